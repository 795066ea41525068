package auth

// Identity is who a dashboard request comes from.
type Identity struct {
	User  string // the Unix user name
	Admin bool   // sees and acts on every user's jobs
	Via   string // "token" or "oidc"
}
