//go:build !race

package analyzertest

const raceFactor = 1
