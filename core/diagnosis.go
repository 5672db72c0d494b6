package core

// Check is one finding of a backend's self-diagnosis (`hsmhost doctor`):
// what was checked, whether it passed, what was seen, and what to do when
// it did not pass.
type Check struct {
	Name   string
	OK     bool
	Detail string
	Fix    string
}
