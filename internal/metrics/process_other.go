//go:build !linux

package metrics

// RegisterProcess registers nothing off Linux: the process series are read
// from /proc.
func (r *Registry) RegisterProcess() {}
