package custody

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"berth.dev/berth/internal/sign/keys"
)

// BackupPEMType is the PEM block of a key backup: the backup document,
// sealed by go-securesystemslib's encrypted format (scrypt and NaCl
// secretbox, as cosign's private keys) under a passphrase.
const BackupPEMType = "BERTH KEY BACKUP"

// MinPassphrase is the shortest passphrase a backup is sealed with.
const MinPassphrase = 12

var (
	// ErrWrongPassphrase means the passphrase does not open the backup
	// (or its ciphertext is damaged: authenticated encryption cannot tell).
	ErrWrongPassphrase = errors.New("wrong passphrase for the key backup (or the backup is damaged)")
	// ErrBadBackup means the data is not a berth key backup, or is damaged.
	ErrBadBackup = errors.New("not a readable berth key backup")
	// ErrHasKeys means the server already holds keys and the restore was
	// not forced.
	ErrHasKeys = errors.New("this server already holds signing keys")
)

// backupDoc is what a backup holds, in the clear only inside its sealed
// envelope.
type backupDoc struct {
	Version   int          `json:"version"`
	CreatedAt time.Time    `json:"created_at"`
	Keys      []backupKey  `json:"keys"`
	Rules     []backupRule `json:"rules"`
}

type backupKey struct {
	Key
	Private []byte `json:"private_pkcs8"`
}

type backupRule struct {
	Project string `json:"project"`
	Rule
}

// Backup returns every key (every version, with its window) and every
// stage rule, sealed under passphrase.
func (s *Service) Backup(ctx context.Context, passphrase []byte) (data []byte, n int, err error) {
	if len(passphrase) < MinPassphrase {
		return nil, 0, fmt.Errorf("%w: the passphrase must be at least %d characters", ErrInvalid, MinPassphrase)
	}
	doc := backupDoc{Version: 1, CreatedAt: s.now().UTC()}
	all, err := s.store.AllKeys(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read keys: %w", err)
	}
	defer func() {
		for _, k := range doc.Keys {
			clear(k.Private)
		}
	}()
	for _, k := range all {
		der, err := unseal(s.master, k.WrappedDEK, k.Ciphertext, []byte(k.ID))
		if err != nil {
			return nil, 0, fmt.Errorf("key %s: %w", k.ID, err)
		}
		doc.Keys = append(doc.Keys, backupKey{Key: k.Key, Private: der})
	}
	rules, err := s.store.AllRules(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read stage rules: %w", err)
	}
	for _, r := range rules {
		doc.Rules = append(doc.Rules, backupRule{Project: r.Project, Rule: r.Rule})
	}
	plain, err := json.Marshal(doc)
	if err != nil {
		return nil, 0, err
	}
	defer clear(plain)
	sealedDoc, err := encrypted.Encrypt(plain, passphrase)
	if err != nil {
		return nil, 0, fmt.Errorf("seal backup: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: BackupPEMType, Headers: map[string]string{
		"Created": doc.CreatedAt.Format(time.RFC3339), "Keys": fmt.Sprint(len(doc.Keys))}, Bytes: sealedDoc}), len(doc.Keys), nil
}

// ProjectResolver finds the identity of a project by name on this server.
type ProjectResolver func(name string) (id string, err error)

// RestoreResult says what a restore brought back.
type RestoreResult struct {
	Keys     int      `json:"keys"`
	Rules    int      `json:"rules"`
	Projects []string `json:"projects"`
}

// Restore opens a backup and brings its keys and rules back, into this
// server or a new one (projects are matched by name and must exist). It
// checks everything first and writes in one transaction: a wrong
// passphrase, a damaged backup or a missing project restores nothing.
// A server that already holds keys is refused unless force is set; then
// the restored projects' keys and rules are replaced by the backup's.
func (s *Service) Restore(ctx context.Context, data, passphrase []byte, force bool, resolve ProjectResolver) (RestoreResult, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != BackupPEMType || strings.TrimSpace(string(rest)) != "" {
		return RestoreResult{}, fmt.Errorf("%w: want one %q PEM block", ErrBadBackup, BackupPEMType)
	}
	plain, err := encrypted.Decrypt(block.Bytes, passphrase)
	if err != nil {
		if strings.Contains(err.Error(), "decryption failed") {
			return RestoreResult{}, ErrWrongPassphrase
		}
		return RestoreResult{}, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	defer clear(plain)
	var doc backupDoc
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || doc.Version != 1 {
		return RestoreResult{}, fmt.Errorf("%w: backup document (version %d): %v", ErrBadBackup, doc.Version, err)
	}
	defer func() {
		for _, k := range doc.Keys {
			clear(k.Private)
		}
	}()
	ids := map[string]string{}
	var missing []string
	lookup := func(project string) {
		if _, ok := ids[project]; ok {
			return
		}
		id, err := resolve(project)
		if err != nil {
			missing = append(missing, project)
			ids[project] = ""
			return
		}
		ids[project] = id
	}
	for _, k := range doc.Keys {
		lookup(k.Project)
	}
	for _, r := range doc.Rules {
		lookup(r.Project)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return RestoreResult{}, fmt.Errorf("%w: create these projects first: %s (nothing was restored)", ErrNotFound, strings.Join(missing, ", "))
	}
	// Every key is opened, checked against its recorded public key and
	// sealed under this server's master key before anything is written.
	var rows []SealedKey
	current := map[[2]string]int{}
	for _, bk := range doc.Keys {
		priv, err := x509.ParsePKCS8PrivateKey(bk.Private)
		if err != nil {
			return RestoreResult{}, fmt.Errorf("%w: key %s: %v", ErrBadBackup, bk.ID, err)
		}
		pub, err := keys.ParsePublic([]byte(bk.PublicKey))
		if err != nil {
			return RestoreResult{}, fmt.Errorf("%w: key %s: %v", ErrBadBackup, bk.ID, err)
		}
		if !publicOf(priv, pub) {
			return RestoreResult{}, fmt.Errorf("%w: key %s: its private and public halves do not match", ErrBadBackup, bk.ID)
		}
		if bk.Signing {
			current[[2]string{bk.Project, bk.Purpose}]++
		}
		k := bk.Key
		k.ProjectID = ids[k.Project]
		w, c, err := seal(s.master, bk.Private, []byte(k.ID))
		if err != nil {
			return RestoreResult{}, err
		}
		rows = append(rows, SealedKey{Key: k, WrappedDEK: w, Ciphertext: c})
	}
	for pp, n := range current {
		if n > 1 {
			return RestoreResult{}, fmt.Errorf("%w: project %s has %d signing %s keys", ErrBadBackup, pp[0], n, pp[1])
		}
	}
	for _, r := range doc.Rules {
		if err := r.Rule.Check(); err != nil {
			return RestoreResult{}, fmt.Errorf("%w: rule of %s: %v", ErrBadBackup, r.Project, err)
		}
	}
	var res RestoreResult
	err = s.store.Update(ctx, "restore keys", func(tx Tx) error {
		// The store may run this again: it starts from nothing each time.
		res = RestoreResult{}
		have, err := tx.CountKeys(ctx)
		if err != nil {
			return err
		}
		if have > 0 && !force {
			return fmt.Errorf("%w (%d); restoring would mix two key sets: pass force to replace the restored projects' keys", ErrHasKeys, have)
		}
		for project, id := range ids {
			if err := tx.DeleteProject(ctx, id); err != nil {
				return err
			}
			res.Projects = append(res.Projects, project)
		}
		for _, k := range rows {
			// A key id from the backup may be held by another project
			// of this server only if that server restored it before.
			if err := tx.DeleteKey(ctx, k.ID); err != nil {
				return err
			}
			if err := tx.InsertKey(ctx, k); err != nil {
				return err
			}
			res.Keys++
		}
		for _, r := range doc.Rules {
			if err := tx.PutRule(ctx, ids[r.Project], r.Project, r.Rule); err != nil {
				return err
			}
			res.Rules++
		}
		if s.beforeCommit != nil {
			return s.beforeCommit("restore")
		}
		return nil
	})
	if err != nil {
		return RestoreResult{}, err
	}
	slices.Sort(res.Projects)
	return res, nil
}

// publicOf reports whether priv's public half is pub.
func publicOf(priv any, pub any) bool {
	s, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return false
	}
	e, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(pub)
}
