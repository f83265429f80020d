//go:build race

package secret

// raceEnabled: the race detector makes the 2 GiB test take ~20 minutes,
// so it runs only in a plain `go test` run (scripts/test.sh makes one for
// it after the -race run).
const raceEnabled = true
