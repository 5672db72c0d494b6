// Package pkcs11backend is an hsmbridge backend that keeps keys in a
// PKCS#11 token.
//
// Concurrency: the token's user is logged in once (login state is shared by
// every session of an application), and a fixed pool of read-write
// sessions is kept in a channel. Each operation takes one session from the
// channel, runs its whole C_*Init/C_* sequence on it and gives it back, so a
// session never has two operations at once and at most `sessions`
// operations run in the token at the same time; the rest wait on the
// channel (or give up when their context ends). When the token reports a
// lost session or login (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT), the
// session is replaced, the user logged in again and the operation retried
// once.
package pkcs11backend
