// Package workpool runs request handlers on goroutines that outlive one
// request. A fresh goroutine per request starts on a small stack, and a
// handler that signs (crypto/ecdsa, crypto/rsa) grows it by copying, on
// every request: in the plugin's CPU profile that was a tenth of its time.
// A worker that waits for the next request keeps the stack it grew.
//
// Workers are made on demand, up to a limit, and end after a while without
// work, so an idle process holds none.
package workpool

import (
	"sync"
	"time"
)

// Pool hands work to idle workers, or to a new one while fewer than its
// limit run.
type Pool struct {
	work  chan func()
	slots chan struct{} // one per running worker
	idle  time.Duration
	wg    sync.WaitGroup
}

// New makes a pool of at most limit workers that end after idle without
// work.
func New(limit int, idle time.Duration) *Pool {
	return &Pool{work: make(chan func()), slots: make(chan struct{}, limit), idle: idle}
}

// Go runs f on an idle worker or a new one; while limit workers are busy it
// waits for one of them to finish.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f: // an idle worker took it
		return
	default:
	}
	select {
	case p.work <- f:
	case p.slots <- struct{}{}:
		p.wg.Add(1)
		go p.worker(f)
	}
}

// Wait waits for the workers running now to finish their work and end.
// Go must not be called once Wait has started.
func (p *Pool) Wait() {
	close(p.work)
	p.wg.Wait()
}

func (p *Pool) worker(f func()) {
	defer func() { <-p.slots; p.wg.Done() }()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(p.idle)
		select {
		case next, ok := <-p.work:
			if !ok {
				return
			}
			f = next
		case <-t.C:
			return
		}
	}
}
