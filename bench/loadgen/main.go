// Command loadgen is the wskit benchmark load generator.
//
// One program drives every server under test, so differences in the figures
// come from the servers. It is written in Go on gorilla/websocket so that it
// is cheaper per message than the Python servers it measures; the runner
// (python -m bench) pins it to its own core and reports its CPU use.
// The bcast receivers are the exception: a gorilla connection read by its own
// goroutine cost more per delivery than the servers, so they do their own
// handshake over net.Dialer, are handed over as raw non-blocking sockets and
// are read by a single level-triggered epoll loop with a minimal frame parser
// (unmasked server frames, fragmented messages, pings answered).
//
// Modes:
//
//	echo   N connections, one message in flight on each, for -duration
//	       seconds after -warmup: round trips/s, latency percentiles, MB/s,
//	       bytes on the wire per message.
//	bcast  R receivers (plus -stalled receivers that never read) and one
//	       sender in one room; the sender asks the server for -count
//	       broadcasts of -size bytes: deliveries/s and the time until the
//	       last receiver has the last message. The R receivers are raw
//	       sockets in one epoll loop (see rawLoop); the stalled receivers
//	       and the sender are gorilla connections.
//	idle   open -conns idle connections in two phases (-warm first) so the
//	       runner can read the server's memory between them.
//
// With -hub (echo and bcast) the loader speaks ws-wrapper events to a wskit
// hub (servers/wskit_hub_server.py) instead of the plain protocol below:
// text messages {"a":[event,...args]}, compact JSON.
//
// B7 (bcast only): -sio speaks the same events as Socket.IO v5 over Engine.IO
// v4 to python-socketio (servers/socketio_server.py): the WebSocket transport
// from the start (/socket.io/?EIO=4&transport=websocket), "40" to connect to
// the main namespace, events as "42[name,...args]", "3" answering each "2".
// -urls A,B spreads the receivers over several servers (receiver k on server
// k % n); -rooms R puts them in R rooms (?room=r<k / (conns / R)>, so the
// consecutive members of a room are on different servers) and the sender asks
// for ["bcast", count, size, R]: the emits go to the rooms in turn, each
// receiver expects count / R messages, and each server is asked for its own
// count (["count", "local"]) through a control connection.
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
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
	// B7: Socket.IO v5 over Engine.IO v4 (-sio), several servers (-urls) and
	// rooms (-rooms) of the bcast receivers.
	sio   bool
	urls  []string
	rooms int
}

// events says whether the control messages are events (-hub or -sio) rather
// than the plain protocol's text commands.
func (o *options) events() bool {
	return o.hub || o.sio
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

// dialParallel runs dial(i) for every i below n, o.dialers at a time, with up to
// three tries 50 ms apart for each; it returns the first error.
func dialParallel(o *options, n int, dial func(i int) error) error {
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
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					if err = dial(i); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// dialAll opens n connections, at most o.dialers at a time.
func dialAll(o *options, url string, n int, first int, rcvbuf int) ([]*websocket.Conn, string, error) {
	conns := make([]*websocket.Conn, n)
	var ext atomic.Value
	ext.Store("")
	err := dialParallel(o, n, func(i int) error {
		c, resp, err := dialer(o, first+i, rcvbuf).Dial(url, nil)
		if err != nil {
			if resp != nil && resp.Header.Get("Sec-WebSocket-Extensions") != "" {
				err = fmt.Errorf("%w (server answered Sec-WebSocket-Extensions: %s)",
					err, resp.Header.Get("Sec-WebSocket-Extensions"))
			}
			return fmt.Errorf("connection %d: %w", first+i, err)
		}
		c.SetReadLimit(64 << 20)
		if resp != nil {
			ext.Store(resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		conns[i] = c
		return nil
	})
	if err != nil {
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

// sioEvent encodes a Socket.IO v5 EVENT packet in an Engine.IO v4 MESSAGE
// packet, as python-socketio does: "42" then [name,...args], compact JSON.
func sioEvent(name string, args ...any) []byte {
	var buf bytes.Buffer
	buf.WriteString("42")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(append([]any{name}, args...)); err != nil {
		panic(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// event encodes name(args) in the wire format of the server: Socket.IO with
// -sio, ws-wrapper otherwise.
func event(o *options, name string, args ...any) []byte {
	if o.sio {
		return sioEvent(name, args...)
	}
	return hubEvent(name, args...)
}

// parseEvent reads an event in the wire format of the server; ok is false
// for anything else.
func parseEvent(o *options, data []byte) (name string, args []json.RawMessage, ok bool) {
	if !o.sio {
		return parseHubEvent(data)
	}
	if !bytes.HasPrefix(data, []byte("42")) {
		return "", nil, false
	}
	var msg []json.RawMessage
	if json.Unmarshal(data[2:], &msg) != nil || len(msg) == 0 {
		return "", nil, false
	}
	if json.Unmarshal(msg[0], &name) != nil {
		return "", nil, false
	}
	return name, msg[1:], true
}

// sioOpen completes the Socket.IO connection of a gorilla connection: the
// server's Engine.IO OPEN packet ("0{...}"), the client's CONNECT to the main
// namespace ("40"), the server's answer ("40{...}").
func sioOpen(c *websocket.Conn) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, data, err := c.ReadMessage(); err != nil {
		return err
	} else if !bytes.HasPrefix(data, []byte("0")) {
		return fmt.Errorf("Engine.IO: got %.80q, want the OPEN packet", data)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return err
	}
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte("40")) {
			return nil
		}
		if bytes.HasPrefix(data, []byte("44")) {
			return fmt.Errorf("Socket.IO connection refused: %.200s", data)
		}
	}
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
func hubCall(o *options, c *websocket.Conn, name string, args ...any) (string, error) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, event(o, name, args...)); err != nil {
		return "", err
	}
	return hubAnswer(o, c, name)
}

func hubAnswer(o *options, c *websocket.Conn, name string) (string, error) {
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			return "", err
		}
		if mt != websocket.TextMessage {
			continue
		}
		if o.sio && len(data) == 1 && data[0] == '2' {
			// An Engine.IO PING: answered, or the server drops the connection.
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return "", err
			}
			continue
		}
		got, args, ok := parseEvent(o, data)
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

// senderURL is the URL of the bcast sender (and with -urls of the control
// connection to each server): with -hub or -sio it says so in the query
// string, so that the server leaves it out of the rooms.
func senderURL(o *options, base string) string {
	if !o.events() {
		return base
	}
	return withQuery(endpoint(o, base), "role=sender")
}

// withQuery adds key=value to the query string of u.
func withQuery(u, kv string) string {
	if strings.Contains(u, "?") {
		return u + "&" + kv
	}
	return u + "?" + kv
}

// endpoint is where a WebSocket connects on the server at base: with -sio,
// Engine.IO's path with its WebSocket transport from the start (no polling).
func endpoint(o *options, base string) string {
	if !o.sio {
		return base
	}
	return strings.TrimRight(base, "/") + "/socket.io/?EIO=4&transport=websocket"
}

// roomSize is the number of receivers in each room (with -rooms).
func roomSize(o *options) int {
	return o.conns / o.rooms
}

// receiverURL is the URL of bcast receiver k (from 0): the servers of -urls
// in turn, so that with -rooms the consecutive members of a room are on
// different servers, and its room (r0, r1...) in the query string.
func receiverURL(o *options, k int) string {
	u := endpoint(o, o.urls[k%len(o.urls)])
	if o.rooms > 0 {
		u = withQuery(u, "room=r"+strconv.Itoa(k/roomSize(o)))
	}
	return u
}

// waitCount polls the server until it has registered want connections.
func waitCount(o *options, c *websocket.Conn, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		var answer string
		var err error
		if o.events() && len(o.urls) > 1 {
			// Several servers: each is asked for its own clients.
			answer, err = hubCall(o, c, "count", "local")
		} else if o.events() {
			answer, err = hubCall(o, c, "count")
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

// ---------------------------------------------------------------- bcast receivers
//
// The bcast receivers do not use gorilla: a goroutine per connection costs the
// loader more per delivery than the servers it measures spend. They are raw
// sockets read by one level-triggered epoll loop (rawLoop) with a minimal frame
// parser of their own.

const (
	wsGUID         = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	rawReadLimit   = 64 << 20 // largest frame or message, as gorilla's SetReadLimit in dialAll
	rawReadBuf     = 64 << 10 // one read per ready socket into this buffer
	rawEventsBatch = 1024
	// When a poll returns fewer than rawSmallBatch ready sockets, the loop
	// sleeps rawPause before the next one, so that it handles the sockets in
	// batches instead of being woken for a few at a time: each wakeup costs
	// the loader a context switch and the server the call that wakes it. The
	// figures' timestamps are at most that much late.
	rawSmallBatch = 64
	rawPause      = 200 * time.Microsecond
)

// rawConn is an upgraded connection reduced to a non-blocking file descriptor
// the loader owns, and the bytes that arrived with the handshake's answer.
type rawConn struct {
	fd   int
	seed []byte
}

// rawDial opens connection number i as dialer(o, i, 0) would (same source
// address), performs the client handshake itself and returns a file
// descriptor of its own for the socket. The net.Conn is closed once its
// descriptor is duplicated: closing it takes the socket out of Go's netpoller
// (which would otherwise be woken for every packet the epoll loop reads) and
// releases its descriptor, while the duplicate keeps the connection open.
func rawDial(o *options, u *url.URL, addr string, i int) (rawConn, error) {
	src := net.IPv4(127, 0, 0, byte(1+i%o.sources))
	nd := &net.Dialer{
		Timeout:   10 * time.Second,
		LocalAddr: &net.TCPAddr{IP: src},
	}
	c, err := nd.Dial("tcp", addr)
	if err != nil {
		return rawConn{fd: -1}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var nonce [16]byte
	if _, err := crand.Read(nonce[:]); err != nil {
		return rawConn{fd: -1}, err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:])
	path := u.RequestURI()
	if path == "" {
		path = "/"
	}
	req := "GET " + path + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return rawConn{fd: -1}, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return rawConn{fd: -1}, fmt.Errorf("reading the handshake answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return rawConn{fd: -1}, fmt.Errorf("handshake: status %s, want 101", resp.Status)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!headerHasToken(resp.Header, "Connection", "upgrade") {
		return rawConn{fd: -1}, fmt.Errorf("handshake: no Upgrade: websocket / Connection: Upgrade in the answer")
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return rawConn{fd: -1}, fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		return rawConn{fd: -1}, fmt.Errorf("handshake: server answered Sec-WebSocket-Extensions: %s (none offered)", ext)
	}
	if proto := resp.Header.Get("Sec-WebSocket-Protocol"); proto != "" {
		return rawConn{fd: -1}, fmt.Errorf("handshake: server answered Sec-WebSocket-Protocol: %s (none offered)", proto)
	}
	if o.sio {
		// Socket.IO's CONNECT to the main namespace; the server's OPEN packet
		// and its answer are skipped by rawLoop.message.
		if _, err := c.Write(maskedFrame(1, []byte("40"))); err != nil {
			return rawConn{fd: -1}, err
		}
	}
	var seed []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		seed = append([]byte(nil), b...)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return rawConn{fd: -1}, fmt.Errorf("not a TCP connection: %T", c)
	}
	sc, err := tc.SyscallConn()
	if err != nil {
		return rawConn{fd: -1}, err
	}
	fd := -1
	var derr error
	if err := sc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return rawConn{fd: -1}, err
	}
	if derr != nil {
		return rawConn{fd: -1}, fmt.Errorf("dup: %w", derr)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return rawConn{fd: -1}, err
	}
	return rawConn{fd: fd, seed: seed}, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// rawDialAll opens n raw connections, o.dialers at a time, with dialAll's
// retries; connection k goes to urlOf(k) and is number first+k for its
// source address.
func rawDialAll(o *options, urlOf func(k int) string, n int, first int) ([]rawConn, error) {
	conns := make([]rawConn, n)
	for i := range conns {
		conns[i].fd = -1
	}
	err := dialParallel(o, n, func(i int) error {
		u, err := url.Parse(urlOf(i))
		if err != nil {
			return err
		}
		if u.Scheme != "ws" {
			return fmt.Errorf("bcast receivers speak ws:// only, not %q", u.Scheme)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
		c, err := rawDial(o, u, addr, first+i)
		if err != nil {
			return fmt.Errorf("connection %d: %w", first+i, err)
		}
		conns[i] = c
		return nil
	})
	if err != nil {
		for _, c := range conns {
			if c.fd >= 0 {
				syscall.Close(c.fd)
			}
		}
		return nil, err
	}
	return conns, nil
}

// maskedFrame builds a client frame (FIN set, masked) with a small payload.
func maskedFrame(op byte, payload []byte) []byte {
	f := make([]byte, 0, 6+len(payload))
	f = append(f, 0x80|op, 0x80|byte(len(payload)))
	var key [4]byte
	_, _ = crand.Read(key[:])
	f = append(f, key[:]...)
	for j, b := range payload {
		f = append(f, b^key[j&3])
	}
	return f
}

const (
	rxActive uint8 = iota
	rxDone
	rxFailed
)

// rawRx is the parser state of one receiver.
type rawRx struct {
	fd     int
	state  uint8
	fragOp byte   // opcode of the fragmented message being assembled, 0 if none
	carry  []byte // the start of a frame that has not fully arrived
	msg    []byte // the fragments of that message so far
}

// rawLoop reads every bcast receiver from one goroutine: level-triggered
// epoll, one read per ready socket. It fills runBcast's per-receiver figures.
type rawLoop struct {
	o        *options
	epfd     int
	rx       []rawRx
	active   int
	want     int64 // messages each receiver is to get
	expected []byte
	firsts   []time.Time
	done     []time.Time
	received []int64
	errs     []error
}

func newRawLoop(o *options, conns []rawConn, expected []byte) (*rawLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	n := len(conns)
	l := &rawLoop{
		o:        o,
		epfd:     epfd,
		rx:       make([]rawRx, n),
		active:   n,
		want:     int64(perReceiver(o)),
		expected: expected,
		firsts:   make([]time.Time, n),
		done:     make([]time.Time, n),
		received: make([]int64, n),
		errs:     make([]error, n),
	}
	for i, c := range conns {
		l.rx[i].fd = c.fd
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return l, nil
}

// finish takes receiver i out of the loop: done (its socket stays open until
// closeAll) or failed with err (its socket is closed now).
func (l *rawLoop) finish(i int, err error) {
	r := &l.rx[i]
	if r.state != rxActive {
		return
	}
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, r.fd, nil)
	l.active--
	r.carry, r.msg = nil, nil
	if err == nil {
		r.state = rxDone
		return
	}
	r.state = rxFailed
	l.errs[i] = err
	syscall.Close(r.fd)
	r.fd = -1
}

// run reads until every receiver is done or failed (false) or until the
// deadline (true). seeds are the bytes that came with the handshakes.
func (l *rawLoop) run(conns []rawConn, deadline time.Time) (timedOut bool) {
	if l.want <= 0 {
		now := time.Now()
		for i := range l.rx {
			l.done[i] = now
			l.finish(i, nil)
		}
		return false
	}
	for i, c := range conns {
		if len(c.seed) > 0 {
			if err := l.feed(i, c.seed); err != nil {
				l.finish(i, err)
			}
		}
	}
	events := make([]syscall.EpollEvent, rawEventsBatch)
	buf := make([]byte, rawReadBuf)
	pause := syscall.NsecToTimespec(int64(rawPause))
	for l.active > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			return true
		}
		// A non-blocking poll first; only when nothing is ready, a wait the Go
		// scheduler knows may block.
		n, err := rawEpollWait(l.epfd, events)
		if err == nil && n == 0 {
			n, err = syscall.EpollWait(l.epfd, events, int((wait+time.Millisecond-1)/time.Millisecond))
		}
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			fail(nil, "epoll_wait: %v", err)
		}
		for k := 0; k < n; k++ {
			i := int(events[k].Fd)
			r := &l.rx[i]
			if r.state != rxActive {
				continue
			}
			m, err := rawRecv(r.fd, buf)
			if err != nil {
				if err == syscall.EAGAIN || err == syscall.EINTR {
					continue
				}
				l.finish(i, fmt.Errorf("read after %d of %d messages: %w", l.received[i], l.want, err))
				continue
			}
			if m == 0 {
				l.finish(i, fmt.Errorf("EOF after %d of %d messages", l.received[i], l.want))
				continue
			}
			if err := l.feed(i, buf[:m]); err != nil {
				l.finish(i, err)
			}
		}
		if n < rawSmallBatch && l.active > 0 {
			// Few sockets were ready: let more become ready before the next
			// poll rather than be woken for each of them.
			rawNanosleep(&pause)
		}
	}
	return false
}

// The system calls of the loop that never block (a socket read with
// MSG_DONTWAIT, a poll with a zero timeout, a sleep of rawPause) skip the Go
// scheduler's bookkeeping for calls that may: it costs more than they do.

func rawRecv(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawEpollWait(epfd int, events []syscall.EpollEvent) (int, error) {
	// epoll_pwait with no signal mask is epoll_wait, which arm64 lacks.
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawNanosleep(ts *syscall.Timespec) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(ts)), 0, 0)
}

// frameSize reads the header at the start of p, which holds the beginning
// of a server frame: hdr and total are the header's and the whole frame's
// lengths; need is how many more bytes p must have to hold the header
// (total is 0 then) or the whole frame (0 when it does).
func frameSize(p []byte) (hdr, total, need int, err error) {
	if len(p) < 2 {
		return 0, 0, 2 - len(p), nil
	}
	if p[0]&0x70 != 0 {
		return 0, 0, 0, fmt.Errorf("server frame with RSV bits set (first byte %#02x)", p[0])
	}
	if p[1]&0x80 != 0 {
		return 0, 0, 0, errors.New("masked server frame")
	}
	var plen uint64
	switch l := p[1] & 0x7f; l {
	case 126:
		hdr = 4
		if len(p) < hdr {
			return 0, 0, hdr - len(p), nil
		}
		plen = uint64(binary.BigEndian.Uint16(p[2:4]))
	case 127:
		hdr = 10
		if len(p) < hdr {
			return 0, 0, hdr - len(p), nil
		}
		plen = binary.BigEndian.Uint64(p[2:10])
	default:
		hdr = 2
		plen = uint64(l)
	}
	if plen > rawReadLimit {
		return 0, 0, 0, fmt.Errorf("server frame of %d bytes, over the %d limit", plen, rawReadLimit)
	}
	total = hdr + int(plen)
	if len(p) < total {
		need = total - len(p)
	}
	return hdr, total, need, nil
}

// feed parses what was read from receiver i; an error fails the receiver.
// Bytes after its last message are ignored.
func (l *rawLoop) feed(i int, p []byte) error {
	r := &l.rx[i]
	if len(r.carry) > 0 {
		// Complete the pending frame with as few bytes as it needs.
		for {
			_, _, need, err := frameSize(r.carry)
			if err != nil {
				return err
			}
			if need == 0 {
				break
			}
			if len(p) == 0 {
				return nil
			}
			if need > len(p) {
				need = len(p)
			}
			r.carry = append(r.carry, p[:need]...)
			p = p[need:]
		}
		hdr, total, _, _ := frameSize(r.carry)
		if err := l.frame(i, r.carry[:hdr], r.carry[hdr:total]); err != nil {
			return err
		}
		r.carry = r.carry[:0]
	}
	for len(p) > 0 && r.state == rxActive {
		hdr, total, need, err := frameSize(p)
		if err != nil {
			return err
		}
		if need > 0 {
			r.carry = append(r.carry[:0], p...)
			return nil
		}
		if err := l.frame(i, p[:hdr], p[hdr:total]); err != nil {
			return err
		}
		p = p[total:]
	}
	return nil
}

// frame handles one whole server frame of receiver i.
func (l *rawLoop) frame(i int, hdr, payload []byte) error {
	r := &l.rx[i]
	fin := hdr[0]&0x80 != 0
	op := hdr[0] & 0x0f
	if op >= 8 {
		if !fin || len(payload) > 125 {
			return fmt.Errorf("bad control frame (opcode %d, fin %v, %d bytes)", op, fin, len(payload))
		}
	}
	switch op {
	case 0:
		if r.fragOp == 0 {
			return errors.New("continuation frame outside a fragmented message")
		}
		if len(r.msg)+len(payload) > rawReadLimit {
			return fmt.Errorf("message over the %d byte limit", rawReadLimit)
		}
		r.msg = append(r.msg, payload...)
		if fin {
			op := r.fragOp
			r.fragOp = 0
			return l.message(i, op, r.msg)
		}
	case 1, 2:
		if r.fragOp != 0 {
			return fmt.Errorf("data frame (opcode %d) inside a fragmented message", op)
		}
		if fin {
			return l.message(i, op, payload)
		}
		r.fragOp = op
		r.msg = append(r.msg[:0], payload...)
	case 8:
		if len(payload) >= 2 {
			return fmt.Errorf("server closed the connection after %d of %d messages: code %d %q",
				l.received[i], l.want, binary.BigEndian.Uint16(payload), payload[2:])
		}
		return fmt.Errorf("server closed the connection after %d of %d messages", l.received[i], l.want)
	case 9:
		pong := maskedFrame(10, payload)
		n, err := syscall.Write(r.fd, pong)
		if err != nil {
			return fmt.Errorf("writing a pong: %w", err)
		}
		if n != len(pong) {
			return fmt.Errorf("writing a pong: %d of %d bytes", n, len(pong))
		}
	case 10:
	default:
		return fmt.Errorf("unknown opcode %d", op)
	}
	return nil
}

// sioEventPrefix starts every Socket.IO event: Engine.IO MESSAGE, Socket.IO EVENT.
var sioEventPrefix = []byte("42")

// perReceiver is the number of messages each bcast receiver is to get: the
// emits are spread over the rooms in turn with -rooms.
func perReceiver(o *options) int {
	if o.rooms > 0 {
		return o.count / o.rooms
	}
	return o.count
}

// recoveryForm says whether msg is expected as a hub with recovery on sends
// it: the room and the position spliced in before the event,
// {"r":ROOM,"o":"EPOCH:OFFSET","a":[...]}.
func recoveryForm(msg, expected []byte) bool {
	rest := expected[1:]
	return bytes.HasPrefix(msg, []byte(`{"r":`)) && len(msg) > len(rest)+5 &&
		bytes.HasSuffix(msg, rest) && msg[len(msg)-len(rest)-1] == ','
}

// message checks one whole message of receiver i and counts it, as the
// gorilla receivers did: with -hub it must be the text `expected`, byte for
// byte; otherwise it must have -size bytes.
func (l *rawLoop) message(i int, op byte, msg []byte) error {
	if l.o.sio && op == 1 && !bytes.HasPrefix(msg, sioEventPrefix) {
		switch {
		case len(msg) == 1 && msg[0] == '2':
			// An Engine.IO PING: answered with a PONG, or the server drops us.
			pong := maskedFrame(1, []byte("3"))
			if n, err := syscall.Write(l.rx[i].fd, pong); err != nil || n != len(pong) {
				return fmt.Errorf("writing an Engine.IO pong: %d of %d bytes, %v", n, len(pong), err)
			}
			return nil
		case len(msg) > 0 && msg[0] == '0', bytes.HasPrefix(msg, []byte("40")):
			return nil // the Engine.IO OPEN packet, the Socket.IO CONNECT answer
		}
	}
	if l.expected != nil {
		if op != 1 || !(bytes.Equal(msg, l.expected) || recoveryForm(msg, l.expected)) {
			return fmt.Errorf("got %.80q (opcode %d), want %.80q (text)", msg, op, l.expected)
		}
	} else if len(msg) != l.o.size {
		return fmt.Errorf("got %d bytes, want %d", len(msg), l.o.size)
	}
	l.received[i]++
	n := l.received[i]
	if n == 1 || n == l.want {
		now := time.Now()
		if n == 1 {
			l.firsts[i] = now
		}
		if n == l.want {
			l.done[i] = now
			l.finish(i, nil)
		}
	}
	return nil
}

// closeAll sends a close frame on every receiver still open and closes it.
func (l *rawLoop) closeAll() {
	closeMsg := maskedFrame(8, []byte{0x03, 0xe8}) // 1000, normal closure
	for i := range l.rx {
		r := &l.rx[i]
		if r.fd < 0 {
			continue
		}
		_, _ = syscall.Write(r.fd, closeMsg)
		syscall.Close(r.fd)
		r.fd = -1
	}
	syscall.Close(l.epfd)
}

// ---------------------------------------------------------------- bcast

func runBcast(o *options) {
	receivers, err := rawDialAll(o, func(k int) string { return receiverURL(o, k) }, o.conns, 1)
	if err != nil {
		fail(nil, "connecting receivers: %v", err)
	}
	var stalled []*websocket.Conn
	if o.stalled > 0 {
		// A tiny receive buffer: the server's socket backs up after a few KiB.
		stalled, _, err = dialAll(o, o.urls[0], o.stalled, 1+o.conns, 2048)
		if err != nil {
			fail(nil, "connecting stalled receivers: %v", err)
		}
	}
	// The sender, on the first server, and with -urls a control connection
	// to each other one: each server is asked for its own count.
	senders := make([]*websocket.Conn, len(o.urls))
	for k, base := range o.urls {
		conns, _, err := dialAll(o, senderURL(o, base), 1, 0, 0)
		if err != nil {
			fail(nil, "connecting sender: %v", err)
		}
		senders[k] = conns[0]
		if o.sio {
			if err := sioOpen(conns[0]); err != nil {
				fail(nil, "sender: %v", err)
			}
		}
	}
	sender := senders[0]
	for k, c := range senders {
		want := 1 + (o.conns-k+len(o.urls)-1)/len(o.urls) // itself and its receivers
		if k == 0 {
			want += o.stalled
		}
		got, err := waitCount(o, c, want, 30*time.Second)
		if err != nil {
			fail(nil, "count: %v", err)
		}
		if got < want {
			fail(nil, "server %d registered %d of %d connections", k, got, want)
		}
	}

	// With -hub or -sio every delivery must be the event ["m", "x" * size],
	// byte for byte.
	var expected []byte
	if o.events() {
		expected = event(o, "m", strings.Repeat("x", o.size))
	}
	loop, err := newRawLoop(o, receivers, expected)
	if err != nil {
		fail(nil, "receivers: %v", err)
	}

	emit("MEASURE start")
	if o.holdStdin {
		// The runner takes its readings (Redis's INFO, B7) before the first emit.
		readLine(bufio.NewReader(os.Stdin))
	}
	t0 := time.Now()
	request := []byte(fmt.Sprintf("bcast %d %d", o.count, o.size))
	if o.rooms > 0 {
		// Emit k goes to room r(k % rooms).
		request = event(o, "bcast", o.count, o.size, o.rooms)
	} else if o.events() {
		request = event(o, "bcast", o.count, o.size)
	}
	sendErr := sender.WriteMessage(websocket.TextMessage, request)
	limit := o.timeout - 5*time.Second
	if limit < 5*time.Second {
		limit = 5 * time.Second
	}
	timedOut := false
	if sendErr == nil {
		timedOut = loop.run(receivers, time.Now().Add(limit))
	}
	emit("MEASURE end")
	// The server's answer once it has queued every broadcast.
	ack := ""
	if sendErr == nil {
		sender.SetReadDeadline(time.Now().Add(5 * time.Second))
		if o.events() {
			// ["ok", count], reported as the plain servers' "ok <count>".
			if answer, err := hubAnswer(o, sender, "ok"); err == nil {
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
	done, firsts, received, errs := loop.done, loop.firsts, loop.received, loop.errs
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
		"servers":     len(o.urls),
		"rooms":       o.rooms,
		"deliveries":  total,
		"complete":    complete,
		"server_ack":  ack,
		"conn_errors": nerr,
		"first_error": firstErr,
	}
	// Every delivery is counted at its receiver: what did not arrive is lost.
	expectedTotal := int64(o.conns) * int64(perReceiver(o))
	r["expected_deliveries"] = expectedTotal
	r["lost"] = expectedTotal - total
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
			complete, len(receivers), perReceiver(o), total, time.Since(t0).Seconds(), nerr, firstErr)
		if sendErr != nil {
			r["error"] = fmt.Sprintf("%s; sending the request: %v", r["error"], sendErr)
		}
	}
	go closeAll(stalled) // they may never drain; do not wait on them
	loop.closeAll()
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
	flag.BoolVar(&o.holdStdin, "stdin", false, "idle: wait for a line on stdin after each phase; bcast: after MEASURE start")
	flag.IntVar(&o.maxSamples, "max-samples", 1<<20, "latency samples kept per connection")
	flag.BoolVar(&o.hub, "hub", false, "echo, bcast: speak ws-wrapper events to a wskit hub")
	flag.BoolVar(&o.sio, "sio", false, "bcast: speak Socket.IO v5 over Engine.IO v4 (WebSocket transport)")
	urls := flag.String("urls", "", "bcast: servers, comma-separated (default -url); receivers go to each in turn")
	flag.IntVar(&o.rooms, "rooms", 0, "bcast with -hub or -sio: receivers in this many rooms, emits to each in turn")
	flag.Parse()
	o.urls = []string{o.url}
	if *urls != "" {
		o.urls = strings.Split(*urls, ",")
	}
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
	if o.sio && (o.hub || o.mode != "bcast" || o.stalled > 0) {
		logf("-sio: bcast mode only, without -hub or -stalled")
		os.Exit(2)
	}
	if o.rooms > 0 && (!o.events() || o.conns%o.rooms != 0 || o.count%o.rooms != 0) {
		logf("-rooms: with -hub or -sio, dividing -conns and -count")
		os.Exit(2)
	}
	if len(o.urls) > 1 && (o.mode != "bcast" || !o.events()) {
		logf("-urls: bcast mode with -hub or -sio only")
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
