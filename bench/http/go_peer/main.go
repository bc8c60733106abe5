// Command go_peer serves Go's own net/http/pprof on 127.0.0.1:PORT while a
// goroutine keeps allocating: the peer bench_http_load is compared with.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

var sink [256][]byte

func main() {
	addr := "127.0.0.1:6061"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	runtime.MemProfileRate = 512 * 1024
	go func() {
		x := uint32(1)
		for {
			x = x*1103515245 + 12345
			sink[(x>>8)&255] = make([]byte, 64+(x>>16)%8192)
			if x&1023 == 0 {
				runtime.Gosched()
			}
		}
	}()
	log.Fatal(http.ListenAndServe(addr, nil))
}
