package auth

// LimiterSizes reports how many accounts, names and addresses the login
// limiter tracks, for tests that check its memory stays bounded.
func LimiterSizes(s *Service) (accounts, names, addresses int) {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	return s.limiter.accounts.len(), s.limiter.names.len(), s.limiter.ips.len()
}
