//go:build race

package secret

// raceEnabled: the race detector makes the 2 GiB test take ~20 minutes,
// so it runs only in a plain `go test` run, which scripts/test.sh does not
// make: it is run by hand.
const raceEnabled = true
