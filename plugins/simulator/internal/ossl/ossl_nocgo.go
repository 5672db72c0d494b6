//go:build !cgo

package ossl

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

// handle is the EVP_PKEY's place in a build without cgo, where there is
// none: New stores a nil *handle, and every Key uses crypto/rsa.
type handle struct{}

func newHandle([]byte) (*handle, error) { return nil, nil }

func (*handle) attach(*Key)     {}
func (*handle) attachEC(*ECKey) {}
func (*handle) acquire() bool   { return false }
func (*handle) release()        {}
func (*handle) close()          {}
func (*handle) live() bool      { return false }

var errNoCgo = errors.New("ossl: built without cgo")

func (*handle) sign(int, []byte, crypto.Hash, *PSSOptions) ([]byte, error) { return nil, errNoCgo }

func (*handle) decrypt(int, []byte, *rsa.OAEPOptions) ([]byte, error) { return nil, errNoCgo }

func (*handle) signEC([]byte) ([]byte, error) { return nil, errNoCgo }
