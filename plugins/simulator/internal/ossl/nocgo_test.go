//go:build !cgo

package osslrsa

const cgoBuild = false
