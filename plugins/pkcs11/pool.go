package pkcs11backend

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

type pool struct {
	ctx   *pkcs11.Ctx
	cfg   config
	mu    sync.Mutex // guards slot and login
	slot  uint
	label string
	ch    chan pkcs11.SessionHandle
}

func (p *pool) findSlot() error {
	if p.cfg.haveSlot {
		ti, err := p.ctx.GetTokenInfo(p.cfg.slot)
		if err != nil {
			return p11err("C_GetTokenInfo", "slot "+itoa(p.cfg.slot), err)
		}
		p.slot, p.label = p.cfg.slot, ti.Label
		return nil
	}
	slots, err := p.ctx.GetSlotList(true)
	if err != nil {
		return p11err("C_GetSlotList", "", err)
	}
	for _, s := range slots {
		ti, err := p.ctx.GetTokenInfo(s)
		if err == nil && ti.Label == p.cfg.tokenLabel {
			p.slot, p.label = s, ti.Label
			return nil
		}
	}
	return core.Errorf(core.KindUnavailable, "pkcs11: no token labelled %q in module %s", p.cfg.tokenLabel, p.cfg.module)
}

func (p *pool) openSession() (pkcs11.SessionHandle, error) {
	h, err := p.ctx.OpenSession(p.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, p11err("C_OpenSession", "token "+quote(p.label), err)
	}
	if err := p.ctx.Login(h, pkcs11.CKU_USER, p.cfg.pin); err != nil {
		if e, ok := err.(pkcs11.Error); !ok || uint(e) != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			p.ctx.CloseSession(h)
			return 0, p11err("C_Login", "token "+quote(p.label), err)
		}
	}
	return h, nil
}

func newPool(ctx *pkcs11.Ctx, cfg config) (*pool, error) {
	p := &pool{ctx: ctx, cfg: cfg, ch: make(chan pkcs11.SessionHandle, cfg.sessions)}
	if err := p.findSlot(); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.sessions; i++ {
		h, err := p.openSession()
		if err != nil {
			p.ctx.CloseAllSessions(p.slot)
			return nil, err
		}
		p.ch <- h
	}
	return p, nil
}

// do runs f on a session of its own; on a lost session or login it opens a
// fresh one (finding the slot again after a device error) and retries once.
func (p *pool) do(ctx context.Context, f func(pkcs11.SessionHandle) error) error {
	var h pkcs11.SessionHandle
	select {
	case h = <-p.ch:
	case <-ctx.Done():
		return core.Errorf(core.KindUnavailable, "pkcs11: waiting for a session: %v", ctx.Err())
	}
	err := f(h)
	if err != nil && recoverable(err) {
		p.mu.Lock()
		p.ctx.CloseSession(h)
		var e2 error
		var rv pkcs11.Error
		if errors.As(err, &rv) && (uint(rv) == pkcs11.CKR_DEVICE_REMOVED || uint(rv) == pkcs11.CKR_TOKEN_NOT_PRESENT) {
			e2 = p.findSlot()
		}
		var nh pkcs11.SessionHandle
		if e2 == nil {
			nh, e2 = p.openSession()
		}
		p.mu.Unlock()
		if e2 != nil {
			// Put a handle back so the pool keeps its size; the next user retries.
			p.ch <- h
			return core.Errorf(core.KindUnavailable, "pkcs11: session lost (%v) and could not be reopened: %v", err, e2)
		}
		h = nh
		err = f(h)
	}
	p.ch <- h
	return err
}

func itoa(n uint) string    { return strconv.FormatUint(uint64(n), 10) }
func quote(s string) string { return strconv.Quote(s) }
