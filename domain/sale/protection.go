package sale

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Protection is how an item's sale guards against bots. The zero value is
// not valid; items carry ProtectionNone unless an admin chose otherwise.
type Protection string

// The protections an item can have.
const (
	// ProtectionNone admits any authenticated purchase (the plain sale).
	ProtectionNone Protection = "none"
	// ProtectionTicket requires a purchase to carry a single-use ticket,
	// fetched shortly before buying, that binds user, item and expiry.
	ProtectionTicket Protection = "ticket"
	// ProtectionPoW is ProtectionTicket where the ticket is only issued for
	// a solved proof-of-work challenge, whose cost rises with the item's
	// purchase pressure.
	ProtectionPoW Protection = "pow"
	// ProtectionQueue puts a waiting room in front of the sale: buyers join
	// a line and may buy only with the admission (a single-use ticket) the
	// line gives them in turn, at the item's AdmitPerSecond.
	ProtectionQueue Protection = "queue"
)

// ParseProtection accepts "none", "ticket", "pow" or "queue"; "" means none. Anything
// else is ErrInvalid naming the field "protection".
func ParseProtection(s string) (Protection, error) {
	switch p := Protection(s); p {
	case "":
		return ProtectionNone, nil
	case ProtectionNone, ProtectionTicket, ProtectionPoW, ProtectionQueue:
		return p, nil
	}
	return "", invalid("protection", ProtectionChoices)
}

// OrNone is p, or ProtectionNone for the zero value.
func (p Protection) OrNone() Protection {
	if p == "" {
		return ProtectionNone
	}
	return p
}

// ProtectionChoices is the reason given for a protection that is not one
// of the choices.
const ProtectionChoices = "must be none, ticket, pow or queue"

// NeedsAdmission reports whether a purchase under p must carry an admission
// from the item's waiting room.
func (p Protection) NeedsAdmission() bool { return p == ProtectionQueue }

// NeedsTicket reports whether a purchase under p must carry a ticket.
func (p Protection) NeedsTicket() bool { return p == ProtectionTicket || p == ProtectionPoW }

// Blocked is one user on the blocklist: they may not buy anything.
type Blocked struct {
	User      UserID
	Reason    string
	BlockedAt time.Time
}

// MaxBlockReasonLen bounds the free-text reason an admin gives for a block.
const MaxBlockReasonLen = 255

// ParseBlockReason accepts valid UTF-8 of at most MaxBlockReasonLen
// characters, trimmed.
func ParseBlockReason(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxBlockReasonLen {
		return "", invalid("reason", "must be at most %d characters", MaxBlockReasonLen)
	}
	return s, nil
}
