package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// TokenFile is where `ferry login` keeps a user's token, relative to the
// home dir.
const TokenFile = ".ferry/token"

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 4096

// ErrBadLogin is every failed home-token login: wrong token, no such user,
// no token file. One error for all, so a caller learns nothing about which
// users exist.
var ErrBadLogin = errors.New("wrong user name or token")

// userName is what a Unix user name may look like here (the same rule as
// useradd's default NAME_REGEX, with dots allowed).
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// ValidUser reports whether name may be a Unix user name.
func ValidUser(name string) bool { return userName.MatchString(name) }

// NewToken returns a new random token: 32 bytes, base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Account is what the token check needs to know of a user.
type Account struct {
	Home string
	UID  int
}

// LookupAccount finds a user in the passwd database (files, LDAP/SSSD
// through NSS when cgo is on).
func LookupAccount(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Account{}, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	return Account{Home: u.HomeDir, UID: uid}, nil
}

// Tokens checks home tokens.
type Tokens struct {
	// Lookup finds a user; nil = LookupAccount.
	Lookup func(name string) (Account, error)
}

// Check compares token with the user's token file and returns the file's
// fingerprint (what a session remembers to notice a rotation). Every
// mismatch is ErrBadLogin, possibly wrapped with the detail an admin's log
// wants; a token file others can read is refused outright.
func (t *Tokens) Check(name, token string) (string, error) {
	if !ValidUser(name) {
		return "", ErrBadLogin
	}
	stored, err := t.read(name)
	if err != nil {
		return "", err
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(token))), sha256.Sum256([]byte(stored))
	if token == "" || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return "", ErrBadLogin
	}
	return fingerprint(stored), nil
}

// Fingerprint returns the fingerprint of the user's current token file:
// a session made with another one was made before a rotation.
func (t *Tokens) Fingerprint(name string) (string, error) {
	stored, err := t.read(name)
	if err != nil {
		return "", err
	}
	return fingerprint(stored), nil
}

func fingerprint(token string) string {
	h := sha256.Sum256([]byte("ferry-token\x00" + token))
	return hex.EncodeToString(h[:8])
}

// read reads and checks a user's token file: a regular file (not a link),
// owned by the user, readable by nobody else.
func (t *Tokens) read(name string) (string, error) {
	lookup := t.Lookup
	if lookup == nil {
		lookup = LookupAccount
	}
	acct, err := lookup(name)
	if err != nil {
		return "", fmt.Errorf("%w (user %s: %v)", ErrBadLogin, name, err)
	}
	path := filepath.Join(acct.Home, TokenFile)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("%w (%s: %v)", ErrBadLogin, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w (%s: %v)", ErrBadLogin, path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%w (%s is not a regular file)", ErrBadLogin, path)
	case !ok || int(st.Uid) != acct.UID:
		return "", fmt.Errorf("%w (%s is not owned by %s)", ErrBadLogin, path, name)
	case fi.Mode().Perm()&0o077 != 0:
		return "", &UnsafeTokenError{Path: path, Mode: fi.Mode().Perm()}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", fmt.Errorf("%w (%s: %v)", ErrBadLogin, path, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%w (%s is empty)", ErrBadLogin, path)
	}
	return s, nil
}

// UnsafeTokenError is a token file that others may read: it proves
// nothing, and the user must make a new one.
type UnsafeTokenError struct {
	Path string
	Mode os.FileMode
}

func (e *UnsafeTokenError) Error() string {
	return fmt.Sprintf("the token file %s has mode %04o, so others may have read it: run 'ferry login --rotate' to make a new one", e.Path, e.Mode)
}
