//go:build !cgo

package ossl

const cgoBuild = false
