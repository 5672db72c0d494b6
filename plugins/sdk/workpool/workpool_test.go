package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryJobRunsOnceWithinTheLimit(t *testing.T) {
	p := New(4, time.Second)
	var ran, running, most atomic.Int32
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(100 * time.Microsecond)
			running.Add(-1)
			ran.Add(1)
		})
	}
	wg.Wait()
	p.Wait()
	if ran.Load() != 200 {
		t.Fatalf("%d of 200 jobs ran", ran.Load())
	}
	if most.Load() > 4 {
		t.Fatalf("%d jobs ran at once with a limit of 4", most.Load())
	}
}

func TestIdleWorkersEnd(t *testing.T) {
	p := New(8, 20*time.Millisecond)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	deadline := time.Now().Add(2 * time.Second)
	for p.workers() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle worker did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAWorkerKeepsItsGoroutine(t *testing.T) {
	p := New(1, time.Second)
	defer p.Wait()
	ids := make(chan uint64, 2)
	for range 2 {
		done := make(chan struct{})
		p.Go(func() { ids <- goid(); close(done) })
		<-done
	}
	if a, b := <-ids, <-ids; a != b {
		t.Fatalf("two jobs in a row ran on goroutines %d and %d; the idle worker should take the second", a, b)
	}
}

// workers is how many workers run, busy or idle.
func (p *Pool) workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func TestWorkGoesToTheWorkerIdleLast(t *testing.T) {
	p := New(2, time.Second)
	defer p.Wait()
	// Two workers at once, a then b finishing in that order.
	ids := make(chan uint64, 2)
	release := make([]chan struct{}, 2)
	for i := range release {
		release[i] = make(chan struct{})
		p.Go(func() { <-release[i]; ids <- goid() })
	}
	close(release[0])
	first := <-ids
	for p.idleCount() < 1 {
		time.Sleep(time.Millisecond)
	}
	close(release[1])
	last := <-ids
	for p.idleCount() < 2 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan uint64)
	p.Go(func() { done <- goid() })
	if got := <-done; got != last || got == first {
		t.Fatalf("the next job ran on goroutine %d; %d went idle last, %d before it", got, last, first)
	}
}

func (p *Pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
