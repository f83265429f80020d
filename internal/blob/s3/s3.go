// Package s3 is the blob.Store of a scale-out deployment: blobs are objects
// in an S3 bucket (minio-go v7, path-style requests, so any S3-compatible
// server works), and so is every unfinished upload, so an upload started
// on one replica continues and finishes on any other.
//
// Layout under the bucket (and an optional key prefix):
//
//	blobs/<alg>/<first two hex>/<hex>         one object per verified blob
//	uploads/<id>/started                      marks the session (its time)
//	uploads/<id>/data/<offset, 20 digits>     the content, one object per write
//	uploads/<id>/hashstate                    the running hash, saved on Close
//
// A blob object appears only whole and verified: the content is hashed as
// it streams into the upload's part objects, and Commit copies it to the
// blob's key (server-side when S3 allows, else streamed through) only
// after the digest matched. An upload's parts are listed in offset order;
// the hash state names the size it covers, so a replica resuming an
// upload hashes nothing again unless the state is stale.
//
// This store answers what S3 knows. Whether a blob exists for a repository
// and its size are the meta store's to answer: the registry does not ask
// S3 on every request (see Store.ExistenceFromMeta).
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
)

// Config says where the bucket is and how to reach it.
type Config struct {
	Bucket string
	// Prefix is prepended to every key (e.g. "berth/"), so one bucket can
	// hold other things too.
	Prefix string
	// Endpoint is the server's URL, http://host:port or https://host.
	Endpoint string
	Region   string
	// AccessKey and SecretKey; when both are empty the standard AWS_*
	// environment variables are used (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
	AccessKey string
	SecretKey string
	// PartSize is how much of a stream of unknown length is buffered per
	// multipart part while it is written; 16 MiB when zero.
	PartSize uint64
}

// ParseURL reads the storage.blobs form
// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION. Credentials are never
// part of the URL (URLs end up in logs); they come from Config fields or
// the environment.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("blob storage URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("blob storage URL %q: scheme must be s3", raw)
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("blob storage URL: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("blob storage URL %q: no bucket (s3://BUCKET?endpoint=...)", raw)
	}
	cfg := Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	q := u.Query()
	cfg.Endpoint, cfg.Region = q.Get("endpoint"), q.Get("region")
	for k := range q {
		if k != "endpoint" && k != "region" {
			return Config{}, fmt.Errorf("blob storage URL: unknown parameter %q (endpoint and region are known)", k)
		}
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "https://s3.amazonaws.com"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

// Store keeps blobs as objects in a bucket.
type Store struct {
	c        *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	partSize uint64
}

var _ blob.Store = (*Store)(nil)

// Open connects to the bucket and checks that it exists and that the
// credentials are accepted, so a wrong key or bucket fails at start with
// the server's reason.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	ep, err := url.Parse(cfg.Endpoint)
	if err != nil || ep.Host == "" || (ep.Scheme != "http" && ep.Scheme != "https") {
		return nil, fmt.Errorf("S3 endpoint %q: want http://host:port or https://host", cfg.Endpoint)
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	if cfg.AccessKey == "" && cfg.SecretKey == "" {
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			return nil, fmt.Errorf("S3: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
		}
		creds = credentials.NewEnvAWS()
	}
	c, err := minio.New(ep.Host, &minio.Options{
		Creds:        creds,
		Secure:       ep.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		// minio retries a failing server ten times with backoff (~10 s);
		// a registry request should rather answer 503 within a couple of
		// seconds and let its client retry.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 %s: %w", cfg.Endpoint, err)
	}
	s := &Store{c: c, core: minio.Core{Client: c}, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: cfg.PartSize}
	if s.partSize == 0 {
		s.partSize = 16 << 20
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := c.BucketExists(cctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("S3 bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("S3 bucket %s at %s does not exist", cfg.Bucket, cfg.Endpoint)
	}
	return s, nil
}

// ExistenceFromMeta tells the registry that this store's Stat is a network
// round trip: whether a blob exists, and its size, are to be answered from
// the meta store, which records both once content is verified.
func (s *Store) ExistenceFromMeta() bool { return true }

func (s *Store) blobKey(d digest.Digest) (string, error) {
	if !blob.Supported(d) {
		return "", fmt.Errorf("%w: %q", blob.ErrUnsupportedDigest, d)
	}
	enc := d.Encoded()
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + enc[:2] + "/" + enc, nil
}

func (s *Store) uploadPrefix(id string) string { return s.prefix + "uploads/" + id + "/" }

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == "NoSuchKey"
}

func notFound(d digest.Digest, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, d)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

// Stat implements blob.Store with a HEAD request.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (blob.Info, error) {
	key, err := s.blobKey(d)
	if err != nil {
		return blob.Info{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, notFound(d, err)
	}
	return blob.Info{Digest: d, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open implements blob.Store with one GET: its response carries the size,
// so opening costs no HEAD. Seeking is free until the next read, which
// asks for the rest of the object from the new offset.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	key, err := s.blobKey(d)
	if err != nil {
		return nil, 0, err
	}
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, notFound(d, err)
	}
	return &reader{s: s, ctx: ctx, key: key, size: oi.Size, body: body}, oi.Size, nil
}

// RedirectURL implements blob.Redirector with a presigned GET.
func (s *Store) RedirectURL(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error) {
	key, err := s.blobKey(d)
	if err != nil {
		return "", err
	}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, key, expiry, nil)
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", d, err)
	}
	return u.String(), nil
}

// Unavailable reports whether err means the S3 server cannot be reached
// or failed on its side (5xx, a timeout): a request should be answered
// "try again later", not as broken.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode >= 500 || er.Code == "SlowDown" || er.Code == "RequestTimeout"
	}
	var ne net.Error
	return errors.As(err, &ne)
}

var (
	_ blob.MetaExistence = (*Store)(nil)
	_ blob.Redirector    = (*Store)(nil)
)

// AbortIncompleteUploads implements blob.IncompleteUploads: it aborts the
// multipart uploads of blob keys begun before the time given (a commit
// whose process died; commits take seconds), returning how many.
func (s *Store) AbortIncompleteUploads(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, s.prefix+"blobs/", true) {
		if u.Err != nil {
			return n, fmt.Errorf("list incomplete uploads: %w", u.Err)
		}
		if !u.Initiated.Before(before) {
			continue
		}
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("abort incomplete upload of %s: %w", u.Key, err)
		}
		n++
	}
	return n, nil
}

var _ blob.IncompleteUploads = (*Store)(nil)

// reader is an object's content as an io.ReadSeekCloser.
type reader struct {
	s       *Store
	ctx     context.Context
	key     string
	size    int64
	pos     int64         // where the next Read reads
	body    io.ReadCloser // nil when a Seek moved away from it
	bodyPos int64         // where body's next byte is
}

func (r *reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.body == nil || r.bodyPos != r.pos {
		if r.body != nil {
			r.body.Close()
			r.body = nil
		}
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(r.pos, 0); err != nil {
			return 0, err
		}
		body, _, _, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.key, opts)
		if err != nil {
			return 0, fmt.Errorf("read %s at %d: %w", r.key, r.pos, err)
		}
		r.body, r.bodyPos = body, r.pos
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	r.bodyPos += int64(n)
	if err == io.EOF && r.pos < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek: negative position %d", offset)
	}
	r.pos = offset
	return offset, nil
}

func (r *reader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// Put implements blob.Store: the content goes through an upload, so it is
// verified before it appears under its digest.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error) {
	if !blob.Supported(d) {
		return 0, fmt.Errorf("%w: %q", blob.ErrUnsupportedDigest, d)
	}
	// No session marker: a Put lives for one call. Parts a crash leaves
	// behind are listed as an upload and expire like one.
	u, err := s.newUpload(ctx, d.Algorithm(), false)
	if err != nil {
		return 0, err
	}
	if _, err := u.ReadFrom(r); err != nil {
		return 0, errors.Join(err, u.Cancel(ctx))
	}
	n, err := u.Commit(ctx, d)
	if err != nil {
		return 0, errors.Join(err, u.Cancel(ctx))
	}
	return n, nil
}

// Delete implements blob.Store. S3 deletes a missing key without
// complaint; the interface promises ErrNotFound, so one HEAD comes first.
// Garbage collection deletes in batches with DeleteMany instead.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	key, err := s.blobKey(d)
	if err != nil {
		return err
	}
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
		return notFound(d, err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// DeleteMany deletes blobs in batches of up to 1,000 keys per request
// (S3's DeleteObjects), with no HEAD: a blob already gone counts as
// deleted. It returns the digests whose deletion failed, with the first
// error.
func (s *Store) DeleteMany(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	keys := make(map[string]digest.Digest, len(ds))
	objects := make(chan minio.ObjectInfo)
	var failed []digest.Digest
	var firstErr error
	go func() {
		defer close(objects)
		for _, d := range ds {
			key, err := s.blobKey(d)
			if err != nil {
				continue
			}
			select {
			case objects <- minio.ObjectInfo{Key: key}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, d := range ds {
		if key, err := s.blobKey(d); err == nil {
			keys[key] = d
		} else {
			failed = append(failed, d)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	for e := range s.c.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if isNotFound(e.Err) {
			continue
		}
		if d, ok := keys[e.ObjectName]; ok {
			failed = append(failed, d)
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("delete blob %s: %w", e.ObjectName, e.Err)
		}
	}
	if err := ctx.Err(); err != nil && firstErr == nil {
		firstErr = err
	}
	return failed, firstErr
}

// Walk implements blob.Store by listing blobs/.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing when fn fails
	base := s.prefix + "blobs/"
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: base, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("walk blobs: %w", oi.Err)
		}
		d, ok := s.parseBlobKey(strings.TrimPrefix(oi.Key, base))
		if !ok {
			continue // not ours: leave foreign objects alone
		}
		if err := fn(blob.Info{Digest: d, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// parseBlobKey reads <alg>/<xx>/<hex>.
func (s *Store) parseBlobKey(rest string) (digest.Digest, bool) {
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	return d, blob.Supported(d) && strings.HasPrefix(parts[2], parts[1]) && len(parts[1]) == 2
}

// NewUpload implements blob.Store.
func (s *Store) NewUpload(ctx context.Context) (blob.Upload, error) {
	return s.newUpload(ctx, digest.SHA256, true)
}

// newUpload starts an upload; marked writes the object that makes an
// upload with no content yet visible to ResumeUpload and WalkUploads.
func (s *Store) newUpload(ctx context.Context, alg digest.Algorithm, marked bool) (*upload, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("new upload id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if marked {
		if _, err := s.c.PutObject(ctx, s.bucket, s.uploadPrefix(id)+"started", bytes.NewReader(nil), 0,
			minio.PutObjectOptions{}); err != nil {
			return nil, fmt.Errorf("new upload: %w", err)
		}
	}
	return &upload{s: s, ctx: ctx, id: id, alg: alg, h: alg.Hash()}, nil
}

// part is one object of an upload's content.
type part struct {
	key    string
	offset int64
	size   int64
}

// uploadObjects lists an upload's objects: its parts in offset order, and
// the newest modification time of any of them. found is false when the
// upload has no object at all.
func (s *Store) uploadObjects(ctx context.Context, id string) (parts []part, modTime time.Time, hasState, found bool, err error) {
	prefix := s.uploadPrefix(id)
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, time.Time{}, false, false, fmt.Errorf("upload %s: list: %w", id, oi.Err)
		}
		found = true
		if oi.LastModified.After(modTime) {
			modTime = oi.LastModified
		}
		rest := strings.TrimPrefix(oi.Key, prefix)
		switch {
		case rest == "hashstate":
			hasState = true
		case strings.HasPrefix(rest, "data/"):
			off, perr := strconv.ParseInt(strings.TrimPrefix(rest, "data/"), 10, 64)
			if perr != nil {
				continue
			}
			parts = append(parts, part{key: oi.Key, offset: off, size: oi.Size})
		}
	}
	slices.SortFunc(parts, func(a, b part) int { return int(a.offset - b.offset) })
	return parts, modTime, hasState, found, nil
}

// contiguous returns the content size the parts hold, or an error when
// they do not follow each other (two writers raced at one offset, or an
// object was removed by hand).
func contiguous(id string, parts []part) (int64, error) {
	var size int64
	for _, p := range parts {
		if p.offset != size {
			return 0, fmt.Errorf("upload %s: content has a gap or overlap at offset %d (expected %d)", id, p.offset, size)
		}
		size += p.size
	}
	return size, nil
}

// ResumeUpload implements blob.Store.
func (s *Store) ResumeUpload(ctx context.Context, id string) (blob.Upload, error) {
	if !validUploadID(id) {
		return nil, fmt.Errorf("%w: %q", blob.ErrUploadNotFound, id)
	}
	parts, _, hasState, found, err := s.uploadObjects(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	size, err := contiguous(id, parts)
	if err != nil {
		return nil, err
	}
	u := &upload{s: s, ctx: ctx, id: id, parts: parts, size: size, alg: digest.SHA256}
	if hasState {
		u.loadState(ctx)
	}
	return u, nil
}

// WalkUploads implements blob.Store.
func (s *Store) WalkUploads(ctx context.Context, fn func(blob.UploadInfo) error) error {
	base := s.prefix + "uploads/"
	var ids []string
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: base}) {
		if oi.Err != nil {
			return fmt.Errorf("walk uploads: %w", oi.Err)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(oi.Key, base), "/")
		if validUploadID(id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		info, err := s.StatUpload(ctx, id)
		if errors.Is(err, blob.ErrUploadNotFound) {
			continue // finished while walking
		}
		if err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// StatUpload implements blob.Store. A session whose parts do not follow
// each other still reports (its size as the sum of its parts) so it can be
// expired.
func (s *Store) StatUpload(ctx context.Context, id string) (blob.UploadInfo, error) {
	if !validUploadID(id) {
		return blob.UploadInfo{}, fmt.Errorf("%w: %q", blob.ErrUploadNotFound, id)
	}
	parts, modTime, _, found, err := s.uploadObjects(ctx, id)
	if err != nil {
		return blob.UploadInfo{}, err
	}
	if !found {
		return blob.UploadInfo{}, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	info := blob.UploadInfo{ID: id, ModTime: modTime}
	for _, p := range parts {
		info.Size += p.size
	}
	return info, nil
}

// RemoveUpload implements blob.Store.
func (s *Store) RemoveUpload(ctx context.Context, id string) error {
	if !validUploadID(id) {
		return nil
	}
	return s.removePrefix(ctx, s.uploadPrefix(id))
}

func (s *Store) removePrefix(ctx context.Context, prefix string) error {
	objects := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objects)
		for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				listErr = oi.Err
				return
			}
			objects <- minio.ObjectInfo{Key: oi.Key}
		}
	}()
	var firstErr error
	for e := range s.c.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if firstErr == nil && !isNotFound(e.Err) {
			firstErr = e.Err
		}
	}
	if err := errors.Join(listErr, firstErr); err != nil {
		return fmt.Errorf("remove %s: %w", prefix, err)
	}
	return nil
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// upload is content written towards a blob as part objects.
type upload struct {
	s     *Store
	ctx   context.Context
	id    string
	parts []part
	size  int64
	alg   digest.Algorithm
	// h hashes everything written so far with alg; nil when unknown (a
	// stale saved state, or a write that failed after hashing), and then
	// rebuilt from the parts when needed.
	h    hash.Hash
	done bool
}

var _ blob.Upload = (*upload)(nil)

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

func (u *upload) Write(p []byte) (int, error) {
	n, err := u.ReadFrom(bytes.NewReader(p))
	return int(n), err
}

// stopAtError ends a stream at its reader's first error, remembering it:
// what arrived before is stored as a part, as the interface promises.
type stopAtError struct {
	r   io.Reader
	n   int64
	err error
}

func (s *stopAtError) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
		return n, io.EOF
	}
	return n, err
}

// ReadFrom stores everything read from r as one more part object, hashed
// while it streams.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if err := u.ready(); err != nil {
		return 0, err
	}
	src := &stopAtError{r: r}
	key := fmt.Sprintf("%sdata/%020d", u.s.uploadPrefix(u.id), u.size)
	info, err := u.s.c.PutObject(u.ctx, u.s.bucket, key, io.TeeReader(src, u.h), -1,
		minio.PutObjectOptions{PartSize: u.s.partSize, DisableContentSha256: true})
	if err != nil {
		// The hash has seen bytes that are not stored.
		u.h = nil
		return 0, errors.Join(fmt.Errorf("upload %s: store content: %w", u.id, err), src.err)
	}
	if info.Size != src.n {
		u.h = nil
		return 0, fmt.Errorf("upload %s: stored %d bytes of %d", u.id, info.Size, src.n)
	}
	if info.Size == 0 {
		// Nothing arrived: no empty part objects.
		if err := u.s.c.RemoveObject(u.ctx, u.s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return 0, errors.Join(fmt.Errorf("upload %s: %w", u.id, err), src.err)
		}
		return 0, src.err
	}
	u.parts = append(u.parts, part{key: key, offset: u.size, size: info.Size})
	u.size += info.Size
	return info.Size, src.err
}

// ready makes sure the running hash covers the content already written.
func (u *upload) ready() error {
	if u.done {
		return fmt.Errorf("upload %s is closed", u.id)
	}
	if u.h != nil {
		return nil
	}
	h, err := u.hashParts(u.alg)
	if err != nil {
		return err
	}
	u.h = h
	return nil
}

func (u *upload) hashParts(alg digest.Algorithm) (hash.Hash, error) {
	h := alg.Hash()
	r := u.content()
	defer r.Close()
	n, err := io.Copy(h, r)
	if err != nil {
		return nil, fmt.Errorf("upload %s: rehash: %w", u.id, err)
	}
	if n != u.size {
		return nil, fmt.Errorf("upload %s: parts hold %d bytes, expected %d", u.id, n, u.size)
	}
	return h, nil
}

// content streams the parts in order.
func (u *upload) content() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		for _, p := range u.parts {
			body, _, _, err := u.s.core.GetObject(u.ctx, u.s.bucket, p.key, minio.GetObjectOptions{})
			if err != nil {
				pw.CloseWithError(fmt.Errorf("read %s: %w", p.key, err))
				return
			}
			_, err = io.Copy(pw, body)
			body.Close()
			if err != nil {
				pw.CloseWithError(fmt.Errorf("read %s: %w", p.key, err))
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func (u *upload) digest(alg digest.Algorithm) (digest.Digest, error) {
	if alg == u.alg {
		if err := u.ready(); err != nil {
			return "", err
		}
		return digest.NewDigest(alg, u.h), nil
	}
	// The client chose another algorithm than the one hashed while
	// streaming: read the content once more.
	h, err := u.hashParts(alg)
	if err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// minCopyPart is S3's smallest part of a server-side multipart copy
// (every part but the last).
const minCopyPart = 5 << 20

// maxCopyObject is the largest object one CopyObject request copies.
const maxCopyObject = 5 << 30

func (u *upload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	if u.done {
		return 0, fmt.Errorf("upload %s is already finished", u.id)
	}
	final, err := u.s.blobKey(d)
	if err != nil {
		return 0, err
	}
	got, err := u.digest(d.Algorithm())
	if err != nil {
		return 0, err
	}
	if got != d {
		return 0, fmt.Errorf("%w: want %s, content is %s", blob.ErrDigestMismatch, d, got)
	}
	// Content addressed: an object already under the key holds these very
	// bytes; leave it (and its readers) alone.
	oi, err := u.s.c.StatObject(ctx, u.s.bucket, final, minio.StatObjectOptions{})
	switch {
	case err == nil && oi.Size == u.size:
	case err != nil && !isNotFound(err):
		return 0, fmt.Errorf("commit blob %s: %w", d, err)
	default:
		if err := u.assemble(ctx, final); err != nil {
			return 0, fmt.Errorf("commit blob %s: %w", d, err)
		}
	}
	u.done = true
	if err := u.s.removePrefix(ctx, u.s.uploadPrefix(u.id)); err != nil {
		return 0, fmt.Errorf("commit blob %s: remove upload: %w", d, err)
	}
	return u.size, nil
}

// assemble writes the parts, in order, as the object key: by server-side
// copy when S3 allows it (one part, or every part but the last at least
// 5 MiB), else streamed through this process.
func (u *upload) assemble(ctx context.Context, key string) error {
	dst := minio.CopyDestOptions{Bucket: u.s.bucket, Object: key}
	switch {
	case len(u.parts) == 0:
		_, err := u.s.c.PutObject(ctx, u.s.bucket, key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
		return err
	case len(u.parts) == 1 && u.size <= maxCopyObject:
		_, err := u.s.c.CopyObject(ctx, dst, minio.CopySrcOptions{Bucket: u.s.bucket, Object: u.parts[0].key})
		return err
	case composable(u.parts):
		srcs := make([]minio.CopySrcOptions, len(u.parts))
		for i, p := range u.parts {
			srcs[i] = minio.CopySrcOptions{Bucket: u.s.bucket, Object: p.key}
		}
		_, err := u.s.c.ComposeObject(ctx, dst, srcs...)
		return err
	}
	return u.stream(ctx, key)
}

// stream writes the parts' content as the object key through a multipart
// upload, so that the object appears only when the upload completes,
// whole. A plain PUT cut short (this process killed while it streams) is
// kept half-written by some S3-compatible servers (versitygw 1.8's posix
// backend), and would be served as the blob. An upload left incomplete by
// a crash is invisible; AbortIncompleteUploads removes it.
func (u *upload) stream(ctx context.Context, key string) error {
	id, err := u.s.core.NewMultipartUpload(ctx, u.s.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return err
	}
	r := u.content()
	defer r.Close()
	var parts []minio.CompletePart
	for off, n := int64(0), 1; off < u.size; n++ {
		size := min(int64(u.s.partSize), u.size-off)
		p, err := u.s.core.PutObjectPart(ctx, u.s.bucket, key, id, n, io.LimitReader(r, size), size,
			minio.PutObjectPartOptions{DisableContentSha256: true})
		if err != nil {
			return errors.Join(err, u.s.core.AbortMultipartUpload(context.WithoutCancel(ctx), u.s.bucket, key, id))
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
		off += size
	}
	if _, err := u.s.core.CompleteMultipartUpload(ctx, u.s.bucket, key, id, parts, minio.PutObjectOptions{}); err != nil {
		return errors.Join(err, u.s.core.AbortMultipartUpload(context.WithoutCancel(ctx), u.s.bucket, key, id))
	}
	return nil
}

func composable(parts []part) bool {
	if len(parts) > 10000 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p.size < minCopyPart {
			return false
		}
	}
	return true
}

func (u *upload) Cancel(ctx context.Context) error {
	u.done = true
	if err := u.s.removePrefix(ctx, u.s.uploadPrefix(u.id)); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	return nil
}

// Close saves the running hash so the replica that resumes the upload
// need not read its content again.
func (u *upload) Close() error {
	if u.done {
		return nil
	}
	u.done = true
	return u.saveState()
}

// stateMagic starts a saved hash state: the magic, the algorithm and a
// newline, the size covered as 8 big-endian bytes, then the hash's own
// binary form (the filesystem store's format).
const stateMagic = "berth-upload-hash-v1 "

func (u *upload) saveState() error {
	if u.h == nil {
		return nil
	}
	m, ok := u.h.(encoding.BinaryMarshaler)
	if !ok {
		return nil
	}
	raw, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("upload %s: save hash state: %w", u.id, err)
	}
	var buf bytes.Buffer
	buf.WriteString(stateMagic)
	buf.WriteString(string(u.alg))
	buf.WriteByte('\n')
	binary.Write(&buf, binary.BigEndian, u.size)
	buf.Write(raw)
	// A context of its own: Close often runs as the request that wrote
	// the content ends, and the state is what makes resuming cheap.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), 30*time.Second)
	defer cancel()
	if _, err := u.s.c.PutObject(ctx, u.s.bucket, u.s.uploadPrefix(u.id)+"hashstate", &buf, int64(buf.Len()),
		minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("upload %s: save hash state: %w", u.id, err)
	}
	return nil
}

// loadState restores the running hash if the saved state covers exactly
// the content stored; otherwise the hash is rebuilt when next needed.
func (u *upload) loadState(ctx context.Context) {
	body, _, _, err := u.s.core.GetObject(ctx, u.s.bucket, u.s.uploadPrefix(u.id)+"hashstate", minio.GetObjectOptions{})
	if err != nil {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(body, 4096))
	body.Close()
	if err != nil {
		return
	}
	rest, ok := bytes.CutPrefix(raw, []byte(stateMagic))
	if !ok {
		return
	}
	name, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(rest) < 8 {
		return
	}
	alg := digest.Algorithm(name)
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return
	}
	if int64(binary.BigEndian.Uint64(rest[:8])) != u.size {
		return
	}
	h := alg.Hash()
	um, ok := h.(encoding.BinaryUnmarshaler)
	if !ok || um.UnmarshalBinary(rest[8:]) != nil {
		return
	}
	u.alg, u.h = alg, h
}
