// Command loadgen is the wskit benchmark load generator.
//
// One program drives every server under test, so differences in the figures
// come from the servers. It is written in Go on gorilla/websocket so that it
// is cheaper per message than the Python servers it measures; the runner
// (python -m bench) pins it to its own core and reports its CPU use.
//
// Modes:
//
//	echo   N connections, one message in flight on each, for -duration
//	       seconds after -warmup: round trips/s, latency percentiles, MB/s,
//	       bytes on the wire per message.
//	bcast  R receivers (plus -stalled receivers that never read) and one
//	       sender in one room; the sender asks the server for -count
//	       broadcasts of -size bytes: deliveries/s and the time until the
//	       last receiver has the last message.
//	idle   open -conns idle connections in two phases (-warm first) so the
//	       runner can read the server's memory between them.
//
// With -hub (echo and bcast) the loader speaks ws-wrapper events to a wskit
// hub (servers/wskit_hub_server.py) instead of the plain protocol below:
// text messages {"a":[event,...args]}, compact JSON.
//
// Control protocol spoken by every bench server (text messages):
//
//	"count"                the server answers with its number of open connections
//	"bcast <count> <size>" the server broadcasts <count> binary messages of
//	                       <size> bytes to every other connection, then
//	                       answers "ok <count>" to the sender
//	anything else          echoed back unchanged (text or binary)
//
// The same with -hub, as ws-wrapper events (the sender of bcast connects with
// the query string ?role=sender; every other connection is in the room):
//
//	["echo", s]            answered with the same event, byte for byte
//	["count"]              answered with ["count", <open connections>]
//	["bcast", count, size] the server emits ["m", "x" * size] to the room
//	                       count times, then answers ["ok", count]
//
// Output on stdout, one line each: "MEASURE start" and "MEASURE end" around
// the measured window, "PHASE warm" / "READY" in idle mode, and last
// "RESULT <json>". Diagnostics go to stderr. Every run is bounded by -timeout.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type options struct {
	mode       string
	url        string
	conns      int
	size       int
	binary     bool
	warmup     time.Duration
	duration   time.Duration
	compress   bool
	docs       string
	count      int
	stalled    int
	warm       int
	timeout    time.Duration
	sources    int
	dialers    int
	holdStdin  bool
	maxSamples int
	hub        bool
}

// countingConn counts the bytes that cross the socket (frames, headers and all).
type countingConn struct {
	net.Conn
	read    *atomic.Int64
	written *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

var (
	wireRead    atomic.Int64
	wireWritten atomic.Int64
	stdoutMu    sync.Mutex
)

func emit(line string) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Fprintln(os.Stdout, line)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
}

func result(r map[string]any) {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	emit("RESULT " + string(b))
}

func fail(r map[string]any, format string, args ...any) {
	if r == nil {
		r = map[string]any{}
	}
	r["error"] = fmt.Sprintf(format, args...)
	result(r)
	os.Exit(1)
}

// dialer builds the gorilla dialer for connection number i. Connections are
// spread over -sources loopback source addresses (127.0.0.1 .. 127.0.0.N) so
// that tens of thousands of connections never run out of ephemeral ports.
func dialer(o *options, i int, rcvbuf int) *websocket.Dialer {
	src := net.IPv4(127, 0, 0, byte(1+i%o.sources))
	nd := &net.Dialer{
		Timeout:   10 * time.Second,
		LocalAddr: &net.TCPAddr{IP: src},
	}
	if rcvbuf > 0 {
		nd.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	bufSize := 4096
	if o.size+16 > bufSize {
		// Large enough that a message leaves as a single frame, as browsers send it.
		bufSize = o.size + 16
	}
	if o.mode == "idle" {
		bufSize = 1024
	}
	return &websocket.Dialer{
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := nd.Dial(network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, read: &wireRead, written: &wireWritten}, nil
		},
		HandshakeTimeout:  10 * time.Second,
		ReadBufferSize:    bufSize,
		WriteBufferSize:   bufSize,
		EnableCompression: o.compress,
	}
}

// dialAll opens n connections, at most o.dialers at a time.
func dialAll(o *options, url string, n int, first int, rcvbuf int) ([]*websocket.Conn, string, error) {
	conns := make([]*websocket.Conn, n)
	var ext atomic.Value
	ext.Store("")
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	workers := o.dialers
	if workers > n {
		workers = n
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var c *websocket.Conn
				var resp *http.Response
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					c, resp, err = dialer(o, first+i, rcvbuf).Dial(url, nil)
					if err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					if resp != nil && resp.Header.Get("Sec-WebSocket-Extensions") != "" {
						err = fmt.Errorf("%w (server answered Sec-WebSocket-Extensions: %s)",
							err, resp.Header.Get("Sec-WebSocket-Extensions"))
					}
					errs <- fmt.Errorf("connection %d: %w", first+i, err)
					return
				}
				c.SetReadLimit(64 << 20)
				if resp != nil {
					ext.Store(resp.Header.Get("Sec-WebSocket-Extensions"))
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, "", err
	}
	return conns, ext.Load().(string), nil
}

func closeAll(conns []*websocket.Conn) {
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		if c == nil {
			continue
		}
		_ = c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
		c.Close()
	}
}

// readInto reads the next whole message into buf (reused between calls).
func readInto(c *websocket.Conn, buf *bytes.Buffer) (int, error) {
	mt, r, err := c.NextReader()
	if err != nil {
		return 0, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, err
	}
	return mt, nil
}

func percentile(sorted []uint32, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return float64(sorted[i])
}

// ---------------------------------------------------------------- echo

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

func loadDocs(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []string
	if err := json.Unmarshal(data, &docs); err != nil {
		return nil, err
	}
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = []byte(d)
	}
	if len(out) == 0 {
		return nil, errors.New("no documents")
	}
	return out, nil
}

func runEcho(o *options) {
	var payloads [][]byte
	mt := websocket.TextMessage
	if o.docs != "" {
		docs, err := loadDocs(o.docs)
		if err != nil {
			fail(nil, "reading %s: %v", o.docs, err)
		}
		payloads = docs
	} else {
		p := make([]byte, o.size)
		for i := range p {
			p[i] = "abcdefghijklmnopqrstuvwxyz012345"[i%32]
		}
		payloads = [][]byte{p}
		if o.hub {
			// The server answers with the same event, encoded the same way.
			payloads = [][]byte{hubEvent("echo", string(p))}
		} else if o.binary {
			mt = websocket.BinaryMessage
		}
	}
	conns, ext, err := dialAll(o, o.url, o.conns, 0, 0)
	if err != nil {
		fail(nil, "connecting: %v", err)
	}
	var phase atomic.Int32
	var wg sync.WaitGroup
	counts := make([]int64, len(conns))
	payloadBytes := make([]int64, len(conns))
	lats := make([][]uint32, len(conns))
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			var buf bytes.Buffer
			lat := make([]uint32, 0, 1024)
			k := i
			// One deadline for the whole run: resetting it per message costs more
			// than the rest of a small round trip.
			c.SetReadDeadline(time.Now().Add(o.warmup + o.duration + 15*time.Second))
			for phase.Load() != phaseStop {
				p := payloads[k%len(payloads)]
				k++
				start := time.Now()
				if err := c.WriteMessage(mt, p); err != nil {
					errs[i] = err
					return
				}
				got, err := readInto(c, &buf)
				if err != nil {
					errs[i] = err
					return
				}
				if got != mt || !bytes.Equal(buf.Bytes(), p) {
					errs[i] = fmt.Errorf("bad echo: type %d, %d bytes for %d", got, buf.Len(), len(p))
					return
				}
				if phase.Load() == phaseMeasure {
					counts[i]++
					payloadBytes[i] += int64(len(p))
					if len(lat) < o.maxSamples {
						lat = append(lat, uint32(time.Since(start).Microseconds()))
					}
				}
			}
			lats[i] = lat
		}(i, c)
	}
	time.Sleep(o.warmup)
	r0, w0 := wireRead.Load(), wireWritten.Load()
	emit("MEASURE start")
	t0 := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(o.duration)
	phase.Store(phaseStop)
	elapsed := time.Since(t0).Seconds()
	r1, w1 := wireRead.Load(), wireWritten.Load()
	emit("MEASURE end")
	wg.Wait()
	closeAll(conns)

	var total, totalBytes int64
	var all []uint32
	nerr := 0
	firstErr := ""
	for i := range conns {
		total += counts[i]
		totalBytes += payloadBytes[i]
		all = append(all, lats[i]...)
		if errs[i] != nil {
			nerr++
			if firstErr == "" {
				firstErr = errs[i].Error()
			}
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r := map[string]any{
		"mode":            "echo",
		"conns":           o.conns,
		"round_trips":     total,
		"seconds":         elapsed,
		"rt_per_s":        float64(total) / elapsed,
		"mb_per_s":        float64(totalBytes) / elapsed / 1e6,
		"p50_us":          percentile(all, 0.50),
		"p99_us":          percentile(all, 0.99),
		"negotiated":      ext,
		"conn_errors":     nerr,
		"first_error":     firstErr,
		"wire_in_per_rt":  0.0,
		"wire_out_per_rt": 0.0,
	}
	if total > 0 {
		// Bytes received from the server and sent to it, per round trip, measured
		// on the sockets over the window (frame headers and masks included).
		r["wire_in_per_rt"] = float64(r1-r0) / float64(total)
		r["wire_out_per_rt"] = float64(w1-w0) / float64(total)
		r["payload_per_rt"] = float64(totalBytes) / float64(total)
	}
	if total == 0 || nerr > 0 {
		r["error"] = fmt.Sprintf("%d connections failed: %s", nerr, firstErr)
		if total == 0 && nerr == 0 {
			r["error"] = "no round trip completed"
		}
	}
	result(r)
}

// ---------------------------------------------------------------- control

func command(c *websocket.Conn, cmd string) (string, error) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return "", err
	}
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			return "", err
		}
		if mt == websocket.TextMessage {
			return string(data), nil
		}
	}
}

// hubEvent encodes a ws-wrapper event as the hub does: {"a":[name,...args]},
// compact, no HTML escaping.
func hubEvent(name string, args ...any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"a": append([]any{name}, args...)}); err != nil {
		panic(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// parseHubEvent reads a ws-wrapper event; ok is false for anything else.
func parseHubEvent(data []byte) (name string, args []json.RawMessage, ok bool) {
	var msg struct {
		A []json.RawMessage `json:"a"`
	}
	if json.Unmarshal(data, &msg) != nil || len(msg.A) == 0 {
		return "", nil, false
	}
	if json.Unmarshal(msg.A[0], &name) != nil {
		return "", nil, false
	}
	return name, msg.A[1:], true
}

// hubCall sends the event name(args) and waits for the event of the same name
// coming back (other messages are skipped): the -hub form of command. Its
// answer is given as the plain protocol's: the event's arguments, space-separated.
func hubCall(c *websocket.Conn, name string, args ...any) (string, error) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, hubEvent(name, args...)); err != nil {
		return "", err
	}
	return hubAnswer(c, name)
}

func hubAnswer(c *websocket.Conn, name string) (string, error) {
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			return "", err
		}
		if mt != websocket.TextMessage {
			continue
		}
		got, args, ok := parseHubEvent(data)
		if !ok || got != name {
			continue
		}
		parts := make([]string, len(args))
		for i, a := range args {
			parts[i] = string(a)
		}
		return strings.Join(parts, " "), nil
	}
}

// senderURL is the URL of the bcast sender: with -hub it says so in the query
// string, so that the hub leaves it out of the room.
func senderURL(o *options) string {
	if !o.hub {
		return o.url
	}
	if strings.Contains(o.url, "?") {
		return o.url + "&role=sender"
	}
	return o.url + "?role=sender"
}

// waitCount polls the server until it has registered want connections.
func waitCount(o *options, c *websocket.Conn, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		var answer string
		var err error
		if o.hub {
			answer, err = hubCall(c, "count")
		} else {
			answer, err = command(c, "count")
		}
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(strings.TrimSpace(answer))
		if err != nil {
			return 0, fmt.Errorf("bad answer to count: %q", answer)
		}
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- bcast

func runBcast(o *options) {
	receivers, _, err := dialAll(o, o.url, o.conns, 1, 0)
	if err != nil {
		fail(nil, "connecting receivers: %v", err)
	}
	var stalled []*websocket.Conn
	if o.stalled > 0 {
		// A tiny receive buffer: the server's socket backs up after a few KiB.
		stalled, _, err = dialAll(o, o.url, o.stalled, 1+o.conns, 2048)
		if err != nil {
			fail(nil, "connecting stalled receivers: %v", err)
		}
	}
	senders, _, err := dialAll(o, senderURL(o), 1, 0, 0)
	if err != nil {
		fail(nil, "connecting sender: %v", err)
	}
	sender := senders[0]
	want := o.conns + o.stalled + 1
	got, err := waitCount(o, sender, want, 30*time.Second)
	if err != nil {
		fail(nil, "count: %v", err)
	}
	if got < want {
		fail(nil, "server registered %d of %d connections", got, want)
	}

	// With -hub every delivery must be the event ["m", "x" * size], byte for byte.
	var expected []byte
	if o.hub {
		expected = hubEvent("m", strings.Repeat("x", o.size))
	}
	var t0 time.Time
	done := make([]time.Time, len(receivers))
	firsts := make([]time.Time, len(receivers))
	received := make([]int64, len(receivers))
	errs := make([]error, len(receivers))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range receivers {
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			var buf bytes.Buffer
			<-start
			c.SetReadDeadline(time.Now().Add(o.timeout))
			for n := 0; n < o.count; n++ {
				if _, err := readInto(c, &buf); err != nil {
					errs[i] = err
					return
				}
				if expected != nil {
					if !bytes.Equal(buf.Bytes(), expected) {
						errs[i] = fmt.Errorf("got %.80q, want %.80q", buf.Bytes(), expected)
						return
					}
				} else if buf.Len() != o.size {
					errs[i] = fmt.Errorf("got %d bytes, want %d", buf.Len(), o.size)
					return
				}
				if n == 0 {
					firsts[i] = time.Now()
				}
				received[i]++
			}
			done[i] = time.Now()
		}(i, c)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	emit("MEASURE start")
	t0 = time.Now()
	close(start)
	request := []byte(fmt.Sprintf("bcast %d %d", o.count, o.size))
	if o.hub {
		request = hubEvent("bcast", o.count, o.size)
	}
	sendErr := sender.WriteMessage(websocket.TextMessage, request)
	limit := o.timeout - 5*time.Second
	if limit < 5*time.Second {
		limit = 5 * time.Second
	}
	timedOut := false
	select {
	case <-finished:
	case <-time.After(limit):
		timedOut = true
	}
	emit("MEASURE end")
	// The server's answer once it has queued every broadcast.
	ack := ""
	if sendErr == nil {
		sender.SetReadDeadline(time.Now().Add(5 * time.Second))
		if o.hub {
			// ["ok", count], reported as the plain servers' "ok <count>".
			if answer, err := hubAnswer(sender, "ok"); err == nil {
				ack = "ok " + answer
			}
		} else if mt, data, err := sender.ReadMessage(); err == nil && mt == websocket.TextMessage {
			ack = string(data)
		}
	}

	var last, firstAll time.Time
	var doneTimes []uint32
	var total int64
	complete := 0
	nerr := 0
	firstErr := ""
	for i := range receivers {
		total += received[i]
		if errs[i] != nil {
			nerr++
			if firstErr == "" {
				firstErr = errs[i].Error()
			}
		}
		if firsts[i].After(firstAll) {
			firstAll = firsts[i]
		}
		if !done[i].IsZero() {
			complete++
			if done[i].After(last) {
				last = done[i]
			}
			doneTimes = append(doneTimes, uint32(done[i].Sub(t0).Microseconds()))
		}
	}
	sort.Slice(doneTimes, func(a, b int) bool { return doneTimes[a] < doneTimes[b] })
	r := map[string]any{
		"mode":        "bcast",
		"receivers":   o.conns,
		"stalled":     o.stalled,
		"count":       o.count,
		"size":        o.size,
		"deliveries":  total,
		"complete":    complete,
		"server_ack":  ack,
		"conn_errors": nerr,
		"first_error": firstErr,
	}
	if complete == len(receivers) && nerr == 0 && !timedOut {
		elapsed := last.Sub(t0).Seconds()
		r["seconds"] = elapsed
		r["last_ms"] = elapsed * 1000
		r["first_done_ms"] = float64(doneTimes[0]) / 1000
		r["median_done_ms"] = percentile(doneTimes, 0.5) / 1000
		r["deliveries_per_s"] = float64(total) / elapsed
		// When the first broadcast had reached every receiver.
		r["first_msg_all_ms"] = firstAll.Sub(t0).Seconds() * 1000
	} else {
		r["error"] = fmt.Sprintf("%d of %d receivers got all %d messages (%d deliveries) in %.1f s; %d errors %s",
			complete, len(receivers), o.count, total, time.Since(t0).Seconds(), nerr, firstErr)
	}
	go closeAll(stalled) // they may never drain; do not wait on them
	closeAll(receivers)
	closeAll(senders)
	result(r)
}

// ---------------------------------------------------------------- idle

func readLine(r *bufio.Reader) {
	_, _ = r.ReadString('\n')
}

func runIdle(o *options) {
	stdin := bufio.NewReader(os.Stdin)
	warm := o.warm
	if warm >= o.conns {
		warm = o.conns / 10
	}
	first, _, err := dialAll(o, o.url, warm, 0, 0)
	if err != nil {
		fail(nil, "connecting: %v", err)
	}
	if n, err := waitCount(o, first[0], warm, 20*time.Second); err != nil || n < warm {
		fail(nil, "server registered %d of %d warm connections (%v)", n, warm, err)
	}
	emit(fmt.Sprintf("PHASE warm %d", warm))
	if o.holdStdin {
		readLine(stdin)
	}
	rest, _, err := dialAll(o, o.url, o.conns-warm, warm, 0)
	if err != nil {
		fail(nil, "connecting: %v", err)
	}
	all := append(first, rest...)
	// Every connection reads (answering pings), as a real idle client would.
	for _, c := range all[1:] {
		go func(c *websocket.Conn) {
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}(c)
	}
	n, err := waitCount(o, first[0], o.conns, 30*time.Second)
	if err != nil {
		fail(nil, "count: %v", err)
	}
	emit(fmt.Sprintf("READY %d %d", warm, n))
	if o.holdStdin {
		readLine(stdin)
	} else {
		time.Sleep(o.duration)
	}
	r := map[string]any{"mode": "idle", "conns": o.conns, "warm": warm, "server_count": n}
	if n < o.conns {
		r["error"] = fmt.Sprintf("server registered %d of %d connections", n, o.conns)
	}
	for _, c := range all {
		c.Close() // abrupt: closing 10 000 handshakes politely is not what is measured
	}
	result(r)
}

func main() {
	o := &options{}
	flag.StringVar(&o.mode, "mode", "echo", "echo, bcast or idle")
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:8765/", "server URL")
	flag.IntVar(&o.conns, "conns", 1, "connections (echo, idle) or receivers (bcast)")
	flag.IntVar(&o.size, "size", 32, "message size in bytes")
	flag.BoolVar(&o.binary, "binary", false, "send binary messages (default: text)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warmup before measuring")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured window (idle: hold time)")
	flag.BoolVar(&o.compress, "compress", false, "offer permessage-deflate (no context takeover)")
	flag.StringVar(&o.docs, "docs", "", "JSON file: a list of text documents to echo in turn")
	flag.IntVar(&o.count, "count", 100, "bcast: messages to broadcast")
	flag.IntVar(&o.stalled, "stalled", 1, "bcast: receivers that never read")
	flag.IntVar(&o.warm, "warm", 100, "idle: connections opened before the first phase")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "hard limit on the whole run")
	flag.IntVar(&o.sources, "sources", 8, "loopback source addresses to spread connections over")
	flag.IntVar(&o.dialers, "dialers", 64, "connections being opened at once")
	flag.BoolVar(&o.holdStdin, "stdin", false, "idle: wait for a line on stdin after each phase")
	flag.IntVar(&o.maxSamples, "max-samples", 1<<20, "latency samples kept per connection")
	flag.BoolVar(&o.hub, "hub", false, "echo, bcast: speak ws-wrapper events to a wskit hub")
	flag.Parse()
	if o.sources < 1 || o.sources > 250 {
		o.sources = 1
	}
	// Whatever happens, this process ends by the deadline.
	time.AfterFunc(o.timeout, func() {
		fail(map[string]any{"mode": o.mode}, "loadgen timed out after %s", o.timeout)
	})
	if o.hub && (o.binary || o.docs != "" || o.mode == "idle") {
		logf("-hub sends text events: not with -binary, -docs or -mode idle")
		os.Exit(2)
	}
	switch o.mode {
	case "echo":
		runEcho(o)
	case "bcast":
		runBcast(o)
	case "idle":
		runIdle(o)
	default:
		logf("unknown mode %q", o.mode)
		os.Exit(2)
	}
}
