package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/admission"
	"berth.dev/berth/internal/policy"
)

func newAdmissionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admission",
		Short: "Kubernetes admission webhook: only verified images run",
	}
	cmd.AddCommand(newAdmissionServeCmd(), newAdmissionManifestsCmd())
	return cmd
}

func newAdmissionServeCmd() *cobra.Command {
	var (
		pf                 policyLoadFlags
		addr               string
		certFile, keyFile  string
		selfSigned         bool
		caOut              string
		tlsNames, creds    []string
		podSecurity, insec bool
		timeout            time.Duration
		positive, negative time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve --addr ADDR --policy FILE_OR_DIR",
		Short: "Serve POST /validate and POST /mutate (AdmissionReview v1)",
		Long: `Serve the admission webhook: POST /validate decides Pods and the pod templates
of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs by
the policy (the same evaluation as 'berth policy check'); POST /mutate also
pins every image to the digest it resolved to and was verified at. Images
may be in any registry; credentials come from docker config files
(--registry-credentials, e.g. the .dockerconfigjson of an imagePullSecret)
and the Docker configuration of the user running the webhook.

Refusals are fail-closed: an image whose registry does not answer within the
webhook's timeout is refused with a message saying so. Warn-mode policies
answer warnings; every answer carries audit annotations.

HTTPS is required (the apiserver calls webhooks over TLS): --tls-cert and
--tls-key, or --tls-self-signed (the certificate, its own CA, is written to
--ca-out for the webhook's caBundle).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pf.path == "" {
				return errors.New("--policy is required")
			}
			p, err := pf.load()
			if err != nil {
				return err
			}
			var tlsCfg *tls.Config
			switch {
			case selfSigned && certFile != "":
				return errors.New("--tls-self-signed and --tls-cert exclude each other")
			case (certFile == "") != (keyFile == ""):
				return errors.New("--tls-cert and --tls-key go together")
			case certFile != "":
				c, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("TLS certificate: %w", err)
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
			case selfSigned:
				names := append([]string{"localhost"}, tlsNames...)
				ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
				if host, _, err := net.SplitHostPort(addr); err == nil {
					if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
						ips = append(ips, ip)
					}
				}
				certPEM, keyPEM, err := admission.SelfSigned(names, ips, time.Now(), 365*24*time.Hour)
				if err != nil {
					return err
				}
				c, err := tls.X509KeyPair(certPEM, keyPEM)
				if err != nil {
					return err
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
				if caOut != "" {
					if err := os.WriteFile(caOut, certPEM, 0o644); err != nil {
						return fmt.Errorf("--ca-out: %w", err)
					}
				}
			default:
				return errors.New("the apiserver calls webhooks over HTTPS: give --tls-cert and --tls-key, or --tls-self-signed")
			}
			var keychain authn.Keychain = authn.DefaultKeychain
			if len(creds) > 0 {
				fk, err := admission.FileKeychain(creds...)
				if err != nil {
					return err
				}
				keychain = authn.NewMultiKeychain(fk, authn.DefaultKeychain)
			}
			h := admission.New(admission.Options{Policy: func() *policy.Policy { return p }, Keychain: keychain,
				Insecure: insec, Timeout: timeout, PositiveTTL: positive, NegativeTTL: negative,
				PodSecurity: podSecurity, Logger: slog.Default()})
			mux := http.NewServeMux()
			mux.Handle("/validate", h)
			mux.Handle("/mutate", h)
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
				ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}
			slog.Info("berth admission serving", "url", "https://"+ln.Addr().String(), "policy", p.Source,
				"documents", strings.Join(p.Kinds(), ", "))
			served := make(chan error, 1)
			go func() { served <- srv.ServeTLS(ln, "", "") }()
			select {
			case err := <-served:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(ctx)
		},
	}
	pf.add(cmd, "policy file or directory (required)")
	cmd.Flags().StringVar(&addr, "addr", ":8443", "address to listen on")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	cmd.Flags().BoolVar(&selfSigned, "tls-self-signed", false, "serve with a generated certificate for localhost, the loopback addresses and --tls-name")
	cmd.Flags().StringArrayVar(&tlsNames, "tls-name", nil, "DNS name the self-signed certificate is also for (repeatable)")
	cmd.Flags().StringVar(&caOut, "ca-out", "", "write the self-signed certificate (the webhook's caBundle) to this file")
	cmd.Flags().StringArrayVar(&creds, "registry-credentials", nil, "docker config file with registry credentials (repeatable; an imagePullSecret's .dockerconfigjson works)")
	cmd.Flags().BoolVar(&podSecurity, "pod-security", false, "also refuse pods that break the pod security rule set (runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL, seccomp RuntimeDefault, no privileged, no hostPath)")
	cmd.Flags().BoolVar(&insec, "insecure", false, "allow plain HTTP and unverified TLS to registries off the loopback interface")
	cmd.Flags().DurationVar(&timeout, "timeout", 9*time.Second, "longest decision (the apiserver's own timeout shortens it)")
	cmd.Flags().DurationVar(&positive, "cache-allowed", time.Minute, "how long an allowed decision about a tag is reused")
	cmd.Flags().DurationVar(&negative, "cache-denied", 10*time.Second, "how long a refusal about a tag is reused")
	return cmd
}

func newAdmissionManifestsCmd() *cobra.Command {
	var (
		o                 admission.ManifestOptions
		policyPath, label string
		certFile, keyFile string
		caBundle          string
	)
	cmd := &cobra.Command{
		Use:   "manifests --policy FILE [--url URL]",
		Short: "Print the Kubernetes objects of the webhook",
		Long: `Print, as one YAML stream for kubectl apply -f -: a ConfigMap with the policy,
the TLS Secret, the webhook's Deployment and Service, and the
ValidatingWebhookConfiguration and MutatingWebhookConfiguration (with the CA
bundle, the namespace opt-in label, timeoutSeconds and failurePolicy).

Without --tls-cert a certificate for NAME.NAMESPACE.svc is generated (its
own CA, so it is the caBundle). With --url the configurations point at a
webhook outside the cluster (berth serve's https://HOST/admission) and
only they are printed. Namespaces opt in with the label
(kubectl label namespace prod berth.dev/admission=enabled).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, v, ok := strings.Cut(label, "=")
			if !ok || k == "" {
				return fmt.Errorf("--namespace-label %q: want key=value", label)
			}
			o.NamespaceLabelKey, o.NamespaceLabelValue = k, v
			if o.URL == "" {
				if policyPath == "" {
					return errors.New("--policy is required (or --url for a webhook outside the cluster)")
				}
				data, err := os.ReadFile(policyPath)
				if err != nil {
					return err
				}
				if _, err := policy.Parse(policyPath, data, policy.Options{}); err != nil {
					return err
				}
				o.Policy = data
			}
			switch {
			case caBundle != "":
				if o.URL == "" {
					return errors.New("--ca-bundle is for --url (a webhook serving its own certificate); in the cluster give --tls-cert and --tls-key")
				}
				var err error
				if o.CertPEM, err = os.ReadFile(caBundle); err != nil {
					return err
				}
			case (certFile == "") != (keyFile == ""):
				return errors.New("--tls-cert and --tls-key go together")
			case certFile != "":
				var err error
				if o.CertPEM, err = os.ReadFile(certFile); err != nil {
					return err
				}
				if o.KeyPEM, err = os.ReadFile(keyFile); err != nil {
					return err
				}
			default:
				svc := o.Name + "." + o.Namespace + ".svc"
				var err error
				if o.CertPEM, o.KeyPEM, err = admission.SelfSigned([]string{svc, svc + ".cluster.local"}, nil, time.Now(), 365*24*time.Hour); err != nil {
					return err
				}
			}
			return admission.Manifests(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&policyPath, "policy", "", "policy file to deploy with the webhook")
	cmd.Flags().StringVar(&o.Namespace, "namespace", "berth-system", "namespace the webhook runs in")
	cmd.Flags().StringVar(&o.Name, "name", "berth-admission", "name of the webhook's objects")
	cmd.Flags().StringVar(&o.Image, "image", "berth:"+version, "berth container image")
	cmd.Flags().StringVar(&o.URL, "url", "", "webhook outside the cluster, e.g. https://registry.example/admission")
	cmd.Flags().IntVar(&o.TimeoutSeconds, "timeout", 10, "timeoutSeconds of the webhooks (1-30)")
	cmd.Flags().StringVar(&o.FailurePolicy, "failure-policy", "Fail", "Fail (refuse when the webhook cannot answer) or Ignore")
	cmd.Flags().StringVar(&label, "namespace-label", "berth.dev/admission=enabled", "label that opts a namespace in")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "serving certificate (PEM); its CA bundle is itself")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "key of --tls-cert")
	cmd.Flags().StringVar(&caBundle, "ca-bundle", "", "with --url: the CA (PEM) that signed the webhook's certificate (berth admission serve --ca-out)")
	cmd.Flags().BoolVar(&o.PodSecurity, "pod-security", false, "enforce the pod security rule set too")
	return cmd
}
