// Package core is hsmbridge's domain: key references, key metadata,
// algorithms, key-usage policy and the error kinds every backend reports.
//
// It knows nothing of OpenSSL, of the socket protocol or of go-plugin; those
// live in adapters and plugins and translate to and from these types.
package core
