//go:build race

package secret

// raceEnabled: the race detector makes the 2 GiB test take ~20 minutes;
// it runs in the plain `go test` run.
const raceEnabled = true
