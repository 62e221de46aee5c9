package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Problems with key material, wrapped by the errors of PrivateKeyJWT,
// TLSClientAuth and the readers below, so the configuration can name the
// key at fault (errors.Is).
var (
	ErrKeyFile     = errors.New("unusable client key")
	ErrCertFile    = errors.New("unusable client certificate")
	ErrAlg         = errors.New("assertion algorithm does not fit the key")
	ErrCertKeyPair = errors.New("certificate does not match the key")
)

// Assertion signing algorithms (RFC 7518 section 3.1) private_key_jwt signs with.
const (
	AlgRS256 = "RS256"
	AlgPS256 = "PS256"
	AlgES256 = "ES256"
	AlgES384 = "ES384"
)

// Algs lists the valid client_assertion_alg values.
var Algs = []string{AlgRS256, AlgPS256, AlgES256, AlgES384}

// ReadPrivateKey reads an RSA or EC (P-256, P-384) private key from a PEM
// file: PKCS#1 ("RSA PRIVATE KEY"), PKCS#8 ("PRIVATE KEY") or SEC1 ("EC
// PRIVATE KEY"). Errors wrap ErrKeyFile and never quote the file.
func ReadPrivateKey(file string) (crypto.Signer, error) {
	data, err := readMaterial(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	key, err := parsePrivateKey(data)
	if err == nil {
		key, err = checkKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, file, err)
	}
	return key.(crypto.Signer), nil
}

// parsePrivateKey returns the first private key of a PEM file.
func parsePrivateKey(data []byte) (any, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key (RSA PRIVATE KEY, PRIVATE KEY or EC PRIVATE KEY)")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; give it unencrypted (the file's permissions protect it)")
		default:
			continue // a certificate in the same file, parameters
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", strings.ToLower(block.Type), err)
		}
		return key, nil
	}
}

// maxMaterial bounds a key or certificate file: chains are a few KiB.
const maxMaterial = 1 << 20

// readMaterial reads a key or certificate file of at most maxMaterial bytes.
func readMaterial(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMaterial+1))
	if err == nil && len(data) > maxMaterial {
		err = fmt.Errorf("%s: larger than %d bytes", file, maxMaterial)
	}
	return data, err
}

// checkKey accepts the key types assertions are signed with.
func checkKey(key any) (any, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: use at least 2048", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("EC key on %s: use P-256 or P-384", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%T: want an RSA or EC (P-256, P-384) key", key)
}

// SigningAlg is the algorithm to sign with key: alg when it fits the key,
// else an error wrapping ErrAlg; with alg empty, the key's default (RS256
// for RSA, ES256 for P-256, ES384 for P-384).
func SigningAlg(key crypto.Signer, alg string) (string, error) {
	var fits []string
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		fits = []string{AlgRS256, AlgPS256}
	case *ecdsa.PublicKey:
		fits = []string{AlgES256}
		if k.Curve == elliptic.P384() {
			fits = []string{AlgES384}
		}
	}
	if alg == "" && len(fits) > 0 {
		return fits[0], nil
	}
	for _, f := range fits {
		if f == alg {
			return alg, nil
		}
	}
	return "", fmt.Errorf("%w: %s needs a key for %s, the key is %s", ErrAlg, alg, algKey(alg), keyKind(key))
}

func algKey(alg string) string {
	switch alg {
	case AlgES256:
		return "EC P-256"
	case AlgES384:
		return "EC P-384"
	}
	return "RSA"
}

// keyKind names a key's type and size, for messages and explain.
func keyKind(key crypto.Signer) string {
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", key)
}

// ReadCertificates reads a PEM certificate chain, leaf first. Errors wrap
// ErrCertFile.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := readMaterial(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertFile, err)
	}
	var chain []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCertFile, file, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCertFile, file)
	}
	return chain, nil
}

// matchCertKey checks that the leaf certifies key's public half.
func matchCertKey(leaf *x509.Certificate, key crypto.Signer) error {
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return fmt.Errorf("%w: the certificate for %s is not for this key", ErrCertKeyPair, leaf.Subject)
	}
	return nil
}

// watched is material parsed from files once, and again whenever one of
// them changes on disk (size, modification time or the file itself, as when
// a symlink is swapped): rotated keys and certificates are used from the
// next request on. Material that fails to parse mid-rotation (a new
// certificate written, its key not yet) keeps the last good value.
type watched[T any] struct {
	paths []string
	parse func() (T, error)

	mu      sync.Mutex
	infos   []os.FileInfo // of the last good parse; nil before one
	val     T
	err     error
	version uint64 // good parses so far
}

func newWatched[T any](parse func() (T, error), paths ...string) (*watched[T], error) {
	w := &watched[T]{paths: paths, parse: parse}
	_, err := w.get()
	return w, err
}

// get returns the current value, parsing again when a file changed. Its
// error is the files' own trouble while no good value exists.
func (w *watched[T]) get() (T, error) {
	v, _, err := w.getVersion()
	return v, err
}

// getVersion is get with the number of good parses so far, which changes
// when the value does.
func (w *watched[T]) getVersion() (T, uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	infos := make([]os.FileInfo, len(w.paths))
	same := w.infos != nil
	for i, p := range w.paths {
		info, err := os.Stat(p)
		infos[i] = info
		same = same && err == nil && sameFile(w.infos[i], info)
	}
	if same {
		return w.val, w.version, nil
	}
	val, err := w.parse()
	switch {
	case err == nil:
		w.val, w.err, w.infos = val, nil, infos
		w.version++
	case w.infos == nil:
		w.err = err // nothing good to keep
	}
	return w.val, w.version, w.err
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// certExpired says why a certificate is not valid at now, or "".
func certExpired(c *x509.Certificate, now time.Time) string {
	if now.After(c.NotAfter) {
		return fmt.Sprintf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return fmt.Sprintf("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	return ""
}
