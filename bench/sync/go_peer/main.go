// Command go_peer measures what Go's own mutex and block profiles cost a
// contended sync.Mutex, with bench_sync's three contended workloads: 4
// goroutines take one mutex in a loop, pairs per second with the
// profiles off, at mutex fraction 1, and at fraction 1 plus block rate 1
// (median of 5 interleaved runs of MS milliseconds each).  The peer
// bench_sync's contended figures are compared with.
//
//	go build -o go_peer . && ./go_peer [MS [WORKLOAD 0-2]]
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	goroutines = 4
	reps       = 5
)

var (
	mu      sync.Mutex
	counter int64
	sink    int64
)

// work spins n iterations the compiler cannot drop.
func work(n int) {
	s := sink
	for k := 0; k < n; k++ {
		s += int64(k)
	}
	sink = s
}

// pairs runs the workload for d and returns lock pairs per second.
func pairs(d time.Duration, inside, outside int) float64 {
	var stop atomic.Bool
	var wg sync.WaitGroup
	done := make([]int64, goroutines)
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for !stop.Load() {
				mu.Lock()
				counter++
				work(inside)
				mu.Unlock()
				work(outside)
				done[g]++
			}
		}(g)
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	var total int64
	for _, n := range done {
		total += n
	}
	return float64(total) / time.Since(start).Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func profiles(block, mutex int) {
	runtime.SetBlockProfileRate(block)
	runtime.SetMutexProfileFraction(mutex)
}

func main() {
	ms, only := 500, -1
	if len(os.Args) > 1 {
		ms, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		only, _ = strconv.Atoi(os.Args[2])
	}
	loads := []struct {
		name            string
		inside, outside int
	}{
		{"tight (50-iteration critical section, nothing outside)", 50, 0},
		{"moderate (same, 2000 iterations of work outside)", 50, 2000},
		{"realistic (~1 us critical section, ~8 us of work outside)", 500, 4000},
	}
	d := time.Duration(ms) * time.Millisecond
	for l, w := range loads {
		if only >= 0 && l != only {
			continue
		}
		var off, mut, both []float64
		for r := 0; r < reps; r++ {
			profiles(0, 0)
			off = append(off, pairs(d, w.inside, w.outside))
			profiles(0, 1)
			mut = append(mut, pairs(d, w.inside, w.outside))
			profiles(1, 1)
			both = append(both, pairs(d, w.inside, w.outside))
			profiles(0, 0)
		}
		co, cm, cb := median(off), median(mut), median(both)
		fmt.Printf("go %s, contended, %s: %d goroutines (GOMAXPROCS %d), one sync.Mutex (median of %d x %d ms):\n",
			runtime.Version(), w.name, goroutines, runtime.GOMAXPROCS(0), reps, ms)
		fmt.Printf("  profiles off                  %10.0f pairs/s\n", co)
		fmt.Printf("  mutex fraction 1              %10.0f pairs/s  (%+.1f%%)\n", cm, (cm-co)/co*100)
		fmt.Printf("  mutex 1 + block rate 1        %10.0f pairs/s  (%+.1f%%)\n", cb, (cb-co)/co*100)
	}
}
