//go:build race

package analyzertest

// The race detector disables sync.Pool reuse and instruments every
// allocation, so the same parser allocates several times more.
const raceFactor = 8
