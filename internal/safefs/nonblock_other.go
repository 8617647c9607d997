//go:build !unix

package safefs

// nonBlock is unused where FIFOs do not block an open.
const nonBlock = 0
