// Command gorilla_server is the Go reference peer of the wskit benchmarks:
// gorilla/websocket with the same behaviour as every bench server (echo,
// "count", "bcast <count> <size>"; see bench/loadgen/main.go).
//
// Broadcast follows the usual gorilla pattern: a message is prepared once
// (websocket.PreparedMessage) and queued to each connection's writer
// goroutine, so one peer that stops reading never blocks the others.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// maxQueued bounds what one connection may have waiting for its writer.
const maxQueued = 1 << 16

type client struct {
	ws      *websocket.Conn
	writeMu sync.Mutex // gorilla allows one writer at a time
	queueMu sync.Mutex
	queue   []*websocket.PreparedMessage
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (c *client) write(mt int, data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.ws.WriteMessage(mt, data)
}

func (c *client) enqueue(pm *websocket.PreparedMessage) bool {
	c.once.Do(func() { go c.writer() })
	c.queueMu.Lock()
	if len(c.queue) >= maxQueued {
		c.queueMu.Unlock()
		return false
	}
	c.queue = append(c.queue, pm)
	c.queueMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

func (c *client) writer() {
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.queueMu.Lock()
		batch := c.queue
		c.queue = nil
		c.queueMu.Unlock()
		c.writeMu.Lock()
		for _, pm := range batch {
			if err := c.ws.WritePreparedMessage(pm); err != nil {
				c.writeMu.Unlock()
				return
			}
		}
		c.writeMu.Unlock()
	}
}

type hub struct {
	mu      sync.RWMutex
	clients map[*client]struct{}
}

func (h *hub) add(c *client) {
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *hub) others(self *client) []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		if c != self {
			out = append(out, c)
		}
	}
	return out
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

func main() {
	port := flag.Int("port", 8765, "TCP port on 127.0.0.1")
	compression := flag.Bool("compression", false, "accept permessage-deflate (no context takeover)")
	flag.Parse()

	h := &hub{clients: map[*client]struct{}{}}
	upgrader := websocket.Upgrader{
		ReadBufferSize:    4096,
		WriteBufferSize:   4096,
		EnableCompression: *compression,
		CheckOrigin:       func(r *http.Request) bool { return true },
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(4 << 20)
		c := &client{ws: ws, wake: make(chan struct{}, 1), done: make(chan struct{})}
		h.add(c)
		defer func() {
			h.remove(c)
			close(c.done)
			ws.Close()
		}()
		for {
			mt, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if mt == websocket.TextMessage && len(data) < 32 {
				text := string(data)
				if text == "count" {
					if c.write(mt, []byte(strconv.Itoa(h.count()))) != nil {
						return
					}
					continue
				}
				if strings.HasPrefix(text, "bcast ") {
					var count, size int
					if _, err := fmt.Sscanf(text, "bcast %d %d", &count, &size); err != nil {
						return
					}
					pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, make([]byte, size))
					if err != nil {
						return
					}
					targets := h.others(c)
					for i := 0; i < count; i++ {
						for _, t := range targets {
							t.enqueue(pm)
						}
						runtime.Gosched()
					}
					if c.write(mt, []byte(fmt.Sprintf("ok %d", count))) != nil {
						return
					}
					continue
				}
			}
			if c.write(mt, data) != nil {
				return
			}
		}
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "READY %d\n", *port)
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	log.Fatal(srv.Serve(ln))
}
