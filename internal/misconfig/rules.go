// Package misconfig finds misconfigurations: of an image, from its config
// and its layers (runs as root, secrets in ENV, setuid files the image
// added, caches left behind, ...), and of Dockerfiles, parsed with
// BuildKit's own parser (`berth lint`). Every rule has an id, a
// severity, a description and a fix; docs/secrets.md lists them.
package misconfig

import "sort"

// Severities, the same words as vulnerabilities'.
const (
	SeverityCritical = "CRITICAL"
	SeverityHigh     = "HIGH"
	SeverityMedium   = "MEDIUM"
	SeverityLow      = "LOW"
)

// Rule describes one check.
type Rule struct {
	ID          string
	Severity    string
	Title       string
	Description string
	Fix         string
}

// Finding is one failed check.
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Title    string `json:"title"`
	// Target is what was checked: "image" (the config), "layer" (a file
	// of a layer), or a Dockerfile's path.
	Target string `json:"target"`
	// Path is the file in the image a layer finding is about.
	Path string `json:"path,omitempty"`
	// Line and EndLine locate a Dockerfile finding (1-based).
	Line    int `json:"line,omitempty"`
	EndLine int `json:"endLine,omitempty"`
	// Layer is the diffID of the layer a finding is about; CreatedBy its
	// history entry.
	Layer     string `json:"layer,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
	// Evidence says what was seen, secrets masked.
	Evidence string `json:"evidence"`
}

// Targets.
const (
	TargetImage = "image"
	TargetLayer = "layer"
)

// rules is the one table of checks: image rules (BI) and Dockerfile
// rules (BD).
var rules = map[string]Rule{
	// Image, from the config.
	"BI001": {ID: "BI001", Severity: SeverityHigh, Title: "Image runs as root",
		Description: "The config names no user, or user 0/root: a process that escapes its application, or a container escape, starts as root.",
		Fix:         "Add a USER with a non-zero uid (USER 10001) after installing packages."},
	"BI002": {ID: "BI002", Severity: SeverityHigh, Title: "Secret in ENV or build argument",
		Description: "An environment variable or build argument whose name says it holds a credential has a value in the image config or history: anyone who pulls the image reads it.",
		Fix:         "Pass credentials at run time, or as build secrets (RUN --mount=type=secret); never with ENV or ARG."},
	"BI003": {ID: "BI003", Severity: SeverityLow, Title: "No HEALTHCHECK",
		Description: "The image declares no health check, so an orchestrator that reads it cannot tell a hung container from a working one.",
		Fix:         "Add a HEALTHCHECK (or configure the probe in the orchestrator)."},
	"BI004": {ID: "BI004", Severity: SeverityMedium, Title: "SSH port exposed",
		Description: "Port 22 is exposed: an SSH server in a container is an extra way in, with its own keys to manage.",
		Fix:         "Remove the SSH server and EXPOSE 22; use `docker exec` or `kubectl exec` to get a shell."},
	"BI005": {ID: "BI005", Severity: SeverityMedium, Title: "Remote content added at build time",
		Description: "A build step downloads from a URL (ADD http…) or pipes a download into a shell (curl … | sh): the image depends on what the server sent that day, unverified.",
		Fix:         "Download with a pinned version and check a checksum (ADD --checksum=sha256:…, or curl -o f && sha256sum -c)."},
	"BI006": {ID: "BI006", Severity: SeverityMedium, Title: "Base image not pinned",
		Description: "The base image is named by the latest tag or by no tag at all: rebuilding the same Dockerfile gives a different image.",
		Fix:         "Name the base by a version tag and digest (FROM debian:12.5@sha256:…)."},
	"BI007": {ID: "BI007", Severity: SeverityMedium, Title: "setuid or setgid file added",
		Description: "A layer of the image (not its base layer) adds a file with the setuid or setgid bit: a way to raise privileges inside the container.",
		Fix:         "Remove the bit (chmod u-s,g-s FILE) unless the program must change user, and run as a non-root user."},
	"BI008": {ID: "BI008", Severity: SeverityLow, Title: "World-writable file",
		Description: "A file or directory (other than a sticky directory such as /tmp) is writable by every user: any process can change what another runs or reads.",
		Fix:         "chmod o-w the file; give write access to the one user that needs it."},
	"BI009": {ID: "BI009", Severity: SeverityLow, Title: "Package manager cache left in the image",
		Description: "Package lists or download caches (apt lists, .deb archives, pip or npm caches, apk cache) are in the image: size for nothing, and stale package indexes.",
		Fix:         "Clean in the same RUN that installs (rm -rf /var/lib/apt/lists/*, pip --no-cache-dir, npm cache clean --force, apk --no-cache)."},
	"BI010": {ID: "BI010", Severity: SeverityLow, Title: "sudo installed",
		Description: "sudo is installed: in a container it only serves to gain root, and it needs a root-owned setuid binary.",
		Fix:         "Remove sudo; do privileged work in the build and run as an unprivileged user."},

	// Dockerfiles.
	"BD000": {ID: "BD000", Severity: SeverityLow, Title: "Dockerfile does not parse",
		Description: "A Dockerfile in the scanned tree does not parse, so it was not checked (and docker build would refuse it).",
		Fix:         "Fix the syntax error at the line named; `berth lint FILE` says the same."},
	"BD001": {ID: "BD001", Severity: SeverityMedium, Title: "Base image uses latest or no tag",
		Description: "FROM names an image by latest or no tag: each build may get another image.",
		Fix:         "Pin a version tag, and better a digest: FROM debian:12.5@sha256:…"},
	"BD002": {ID: "BD002", Severity: SeverityLow, Title: "Base image not pinned by digest",
		Description: "FROM names a tag without a digest: the tag can be moved to other content.",
		Fix:         "Add the digest: FROM debian:12.5@sha256:…"},
	"BD003": {ID: "BD003", Severity: SeverityHigh, Title: "Last USER is root",
		Description: "The final stage runs as root: no USER, or USER root/0 last.",
		Fix:         "End the final stage with USER and a non-zero uid."},
	"BD004": {ID: "BD004", Severity: SeverityLow, Title: "ADD used for local files",
		Description: "ADD also extracts archives and fetches URLs; for plain files COPY says what it does.",
		Fix:         "Use COPY for local files and directories."},
	"BD005": {ID: "BD005", Severity: SeverityMedium, Title: "ADD from a URL",
		Description: "ADD downloads a URL at build time without checking what it got.",
		Fix:         "Use ADD --checksum=sha256:… or download and verify in a RUN."},
	"BD006": {ID: "BD006", Severity: SeverityLow, Title: "apt-get install without pinned versions",
		Description: "Packages are installed without versions: each build may get different ones.",
		Fix:         "Pin versions (apt-get install -y curl=7.88.1-10+deb12u5)."},
	"BD007": {ID: "BD007", Severity: SeverityLow, Title: "apt lists not removed",
		Description: "apt-get update's lists stay in the layer (tens of MB) and go stale.",
		Fix:         "End the same RUN with && rm -rf /var/lib/apt/lists/*"},
	"BD008": {ID: "BD008", Severity: SeverityLow, Title: "apt-get install without --no-install-recommends",
		Description: "Recommended packages are installed too: more size and more attack surface.",
		Fix:         "apt-get install -y --no-install-recommends …"},
	"BD009": {ID: "BD009", Severity: SeverityLow, Title: "apk add without pinned versions or with a cache",
		Description: "apk add without versions gets different packages each build; without --no-cache the index stays in the layer.",
		Fix:         "apk add --no-cache curl=8.5.0-r0"},
	"BD010": {ID: "BD010", Severity: SeverityLow, Title: "pip install without pinned versions",
		Description: "pip install names packages without ==versions (and no requirements or constraints file).",
		Fix:         "Pin versions (pip install requests==2.32.3) or install from a locked requirements file."},
	"BD011": {ID: "BD011", Severity: SeverityMedium, Title: "Pipe without pipefail",
		Description: "A RUN pipes commands under /bin/sh without pipefail: a failed download piped into a shell or tar still lets the build pass.",
		Fix:         "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"] before the RUN, or set -o pipefail in it."},
	"BD012": {ID: "BD012", Severity: SeverityLow, Title: "CMD or ENTRYPOINT in shell form",
		Description: "The shell form runs the program under /bin/sh -c, which does not pass signals on: the container is killed instead of stopped.",
		Fix:         "Use the JSON form: CMD [\"/usr/local/bin/app\", \"--flag\"]"},
	"BD013": {ID: "BD013", Severity: SeverityHigh, Title: "Secret in ENV or ARG",
		Description: "ENV or ARG gives a credential-named variable a value: it is kept in the image config or history.",
		Fix:         "Use build secrets (RUN --mount=type=secret,id=…) or pass it at run time."},
	"BD014": {ID: "BD014", Severity: SeverityLow, Title: "No HEALTHCHECK",
		Description: "The final stage declares no HEALTHCHECK.",
		Fix:         "Add HEALTHCHECK CMD …, or HEALTHCHECK NONE to say there is none on purpose."},
	"BD015": {ID: "BD015", Severity: SeverityMedium, Title: "Download piped into a shell",
		Description: "curl or wget output is piped into sh or bash: whatever the server sends runs in the build.",
		Fix:         "Download to a file, verify its checksum, then run it."},
	"BD016": {ID: "BD016", Severity: SeverityMedium, Title: "SSH port exposed",
		Description: "EXPOSE 22: an SSH server in a container is an extra way in.",
		Fix:         "Do not run sshd in the container."},

	// Kubernetes pod specs (kubernetes.go).
	"BK001": {ID: "BK001", Severity: SeverityCritical, Title: "Privileged container",
		Description: "securityContext.privileged: true gives the container every capability and the host's devices: it is root on the node.",
		Fix:         "Remove privileged; grant the one capability needed, if any."},
	"BK002": {ID: "BK002", Severity: SeverityHigh, Title: "Container may run as root",
		Description: "Neither the pod nor the container sets runAsNonRoot: true (or runAsUser is 0): the image's user, often root, is used.",
		Fix:         "Set securityContext.runAsNonRoot: true and a non-zero runAsUser."},
	"BK003": {ID: "BK003", Severity: SeverityMedium, Title: "Privilege escalation allowed",
		Description: "allowPrivilegeEscalation is not false: setuid binaries can raise a process's privileges.",
		Fix:         "Set securityContext.allowPrivilegeEscalation: false."},
	"BK004": {ID: "BK004", Severity: SeverityLow, Title: "Root filesystem writable",
		Description: "readOnlyRootFilesystem is not true: a compromised process can change the container's programs.",
		Fix:         "Set securityContext.readOnlyRootFilesystem: true; mount emptyDir volumes where writes are needed."},
	"BK005": {ID: "BK005", Severity: SeverityMedium, Title: "Capabilities not dropped, or dangerous ones added",
		Description: "capabilities.drop does not include ALL, or add names SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE or ALL.",
		Fix:         "Set capabilities: {drop: [ALL]} and add back only what is needed (NET_BIND_SERVICE)."},
	"BK006": {ID: "BK006", Severity: SeverityHigh, Title: "Host namespaces shared",
		Description: "hostNetwork, hostPID or hostIPC is true: the pod sees and can reach the node's network, processes or IPC.",
		Fix:         "Remove hostNetwork, hostPID and hostIPC."},
	"BK007": {ID: "BK007", Severity: SeverityHigh, Title: "hostPath volume",
		Description: "A hostPath volume mounts a directory of the node into the pod.",
		Fix:         "Use a persistent volume, a configMap or an emptyDir."},
	"BK008": {ID: "BK008", Severity: SeverityMedium, Title: "Image not pinned",
		Description: "The image is named by latest or no tag: each pull may run other code.",
		Fix:         "Name the image by a version tag and digest."},
}

// Rules returns every rule, by id.
func Rules() []Rule {
	out := make([]Rule, 0, len(rules))
	for _, r := range rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup returns the rule of an id.
func Lookup(id string) (Rule, bool) {
	r, ok := rules[id]
	return r, ok
}

func finding(id, target, evidence string) Finding {
	r := rules[id]
	return Finding{ID: id, Severity: r.Severity, Title: r.Title, Target: target, Evidence: evidence}
}

// SeverityRank orders severities, worst first (0).
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityHigh:
		return 1
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 3
	}
	return 4
}
