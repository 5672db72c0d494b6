// Package demopb is the generated code of demo.proto, the grpc-direct
// example's service.
package demopb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative demo.proto
