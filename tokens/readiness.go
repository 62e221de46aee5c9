package tokens

import (
	"errors"
	"time"
)

// usable is a credential whose material can fail at run time: a rotated
// assertion that expired, a key or certificate file gone.
type usable interface {
	Usable(now time.Time) error
}

// Unusable reports why the credential c (a ClientAuth or a *TokenFile)
// cannot be used now, or nil when it can or has nothing that can fail. It
// reads the files it depends on: call it for readiness, not per check.
func Unusable(c any, now time.Time) error {
	if f, ok := c.(*TokenFile); ok && f == nil {
		return nil
	}
	u, ok := c.(usable)
	if !ok {
		return nil
	}
	err := u.Usable(now)
	if e, ok := errors.AsType[*Error](err); ok {
		return errors.New(e.Description) // its class says nothing here
	}
	return err
}
