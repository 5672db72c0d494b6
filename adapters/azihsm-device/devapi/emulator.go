package devapi

// The emulated device (testdoubles/azihsm-emulator) exports a few control
// calls beside the API; the real library has none. A Library does not
// implement HandleCounter or FaultInjector itself, since whether it can
// depends on the file it was loaded from, not on its Go type. Instead a
// Library that may have them implements EmulatorControls, whose accessors
// say whether each call resolved; CounterOf and FaultInjectorOf ask any
// Library (and also accept a Go fake that implements the interface itself).

// FaultInjector is an emulated device's azihsm_emu_inject_fault: the next
// count API calls fail with the named fault (e.g. "io_aborted"). For tests.
type FaultInjector interface {
	InjectFault(fault string, count int32) error
}

// EmulatorControls is implemented by a Library that may have been loaded
// from an emulated device. Each accessor returns false when the library has
// no such control call (the real one).
type EmulatorControls interface {
	Counter() (HandleCounter, bool)
	FaultInjector() (FaultInjector, bool)
}

// CounterOf returns lib's handle counter, if it has one.
func CounterOf(lib Library) (HandleCounter, bool) {
	if c, ok := lib.(HandleCounter); ok {
		return c, true
	}
	if e, ok := lib.(EmulatorControls); ok {
		return e.Counter()
	}
	return nil, false
}

// FaultInjectorOf returns lib's fault injector, if it has one.
func FaultInjectorOf(lib Library) (FaultInjector, bool) {
	if f, ok := lib.(FaultInjector); ok {
		return f, true
	}
	if e, ok := lib.(EmulatorControls); ok {
		return e.FaultInjector()
	}
	return nil, false
}
