//go:build !race

package secret

const raceEnabled = false
