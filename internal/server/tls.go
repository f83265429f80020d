package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// SelfSignedCertPath is where --tls-self-signed keeps its certificate, for
// clients to trust (its key is beside it, tls/key.pem).
func SelfSignedCertPath(dataDir string) string { return filepath.Join(dataDir, "tls", "cert.pem") }

// tlsConfig loads the configured certificate, or makes (and keeps) a
// self-signed one; nil when TLS is off.
func tlsConfig(cfg Config, dataDir string, log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := cfg.TLS.Cert, cfg.TLS.Key
	switch {
	case cfg.TLS.SelfSigned:
		certFile, keyFile = SelfSignedCertPath(dataDir), filepath.Join(dataDir, "tls", "key.pem")
		made, err := ensureSelfSigned(certFile, keyFile, cfg.Addr, time.Now())
		if err != nil {
			return nil, err
		}
		if made {
			log.Warn("generated a self-signed TLS certificate for development; clients must trust it "+
				"(e.g. copy it to /etc/docker/certs.d/HOST:PORT/ca.crt, or pass --cacert)", "cert", certFile)
		}
	case certFile == "":
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// selfSignedLife is how long a generated certificate is valid; it is
// renewed on start when less than a tenth remains.
const selfSignedLife = 365 * 24 * time.Hour

// ensureSelfSigned keeps a certificate for addr's host (and localhost)
// at certFile, making a new one when it is missing, expiring or does not
// cover the host. It reports whether it made one.
func ensureSelfSigned(certFile, keyFile, addr string, now time.Time) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("tls: listen address %q: %w", addr, err)
	}
	dnsNames, ips := certNames(host)
	if current, err := readCert(certFile); err == nil {
		renewAt := current.NotAfter.Add(-selfSignedLife / 10)
		covers := true
		for _, n := range dnsNames {
			covers = covers && slices.Contains(current.DNSNames, n)
		}
		for _, ip := range ips {
			covers = covers && slices.ContainsFunc(current.IPAddresses, ip.Equal)
		}
		if covers && now.Before(renewAt) {
			if _, err := os.Stat(keyFile); err == nil {
				return false, nil
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "berth development certificate", Organization: []string{"berth"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLife),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// A CA for itself, so that clients can trust it as a root.
		IsCA:        true,
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return false, err
	}
	// Not secret, but everything berth writes in the data directory is
	// kept from other users; operators copy it to clients.
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o640); err != nil {
		return false, err
	}
	return true, nil
}

// certNames lists the names a certificate for host must carry: the host
// itself (unless it is the wildcard address), this machine's name, and
// loopback.
func certNames(host string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	} else if host != "" && host != "localhost" {
		dns = append(dns, host)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil && name != "" && name != "localhost" {
			dns = append(dns, name)
		}
	}
	return dns, ips
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tls: %s holds no certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}
