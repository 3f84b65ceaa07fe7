package server

// SledService is the handlers' view of the sled service, exported to the
// black-box tests so they can serve a fake that fails in every way.
type SledService = sledService

// NewWithSled is New over any SledService.
func NewWithSled(cfg Config, s SledService) *Server { return newServer(cfg, s) }

// ErrorEntry, ErrorEntries and ForError expose the error table to the
// tests that walk it.
type ErrorEntry = errorEntry

var (
	ErrorEntries = errorEntries
	ForError     = forError
)
