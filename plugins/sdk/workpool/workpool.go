// Package workpool runs request handlers on goroutines that outlive one
// request. A fresh goroutine per request starts on a small stack, and a
// handler that signs (crypto/ecdsa, crypto/rsa) grows it by copying, on
// every request: in the plugin's CPU profile that was a tenth of its time.
// A worker that waits for the next request keeps the stack it grew.
//
// Work goes to the worker that went idle last, whose stack is the likeliest
// to be still in the processor's caches; after a burst, the workers at the
// bottom of the stack stay idle and end.
//
// Workers are made on demand, up to a limit, and end after a while without
// work, so an idle process holds none.
package workpool

import (
	"sync"
	"time"
)

// Pool hands work to the most recently idle worker, or to a new one while
// fewer than its limit run.
type Pool struct {
	mu      sync.Mutex
	free    sync.Cond // signalled when a worker goes idle or ends
	idle    []*worker // a stack: the last went idle last
	running int
	limit   int
	closed  bool
	wait    time.Duration
	wg      sync.WaitGroup
}

type worker struct {
	work chan func() // buffered: a handed job never blocks the hand
}

// New makes a pool of at most limit workers that end after idle without
// work.
func New(limit int, idle time.Duration) *Pool {
	p := &Pool{limit: max(limit, 1), wait: idle}
	p.free.L = &p.mu
	return p
}

// Go runs f on an idle worker or a new one; while limit workers are busy it
// waits for one of them to finish.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	for len(p.idle) == 0 && p.running >= p.limit {
		p.free.Wait()
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.running++
	p.wg.Add(1)
	p.mu.Unlock()
	go p.run(&worker{work: make(chan func(), 1)}, f)
}

// Wait waits for the workers running now to finish their work and end.
// Go must not be called once Wait has started.
func (p *Pool) Wait() {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.idle {
		w.work <- nil
	}
	p.idle = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Pool) run(w *worker, f func()) {
	defer p.wg.Done()
	t := time.NewTimer(p.wait)
	defer t.Stop()
	for f != nil {
		f()
		if !p.park(w) {
			return
		}
		t.Reset(p.wait)
		select {
		case f = <-w.work:
		case <-t.C:
			if p.retire(w) {
				return
			}
			f = <-w.work // handed a job just as the wait ended
		}
	}
}

// park puts w on the idle stack, or ends it once the pool is closed.
func (p *Pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.running--
		return false
	}
	p.idle = append(p.idle, w)
	p.free.Signal()
	return true
}

// retire ends an idle worker, unless Go took it off the stack already.
func (p *Pool) retire(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.running--
			p.free.Signal()
			return true
		}
	}
	return false
}
