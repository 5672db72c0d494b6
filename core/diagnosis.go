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

// Counter is one count a backend keeps of its own work, exported by
// hsmhost as a metric: Name is lower case, digits and _ ("retries"), and
// Value only grows while the backend runs.
type Counter struct {
	Name  string
	Value uint64
}
