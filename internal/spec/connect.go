package spec

import "strings"

// Connect is a whole -k kdsrv:server=@{...},trans=@{...} value.
type Connect struct {
	Server *Transport // how the client reaches the KD connection server
	Trans  *Target    // the kernel debug connection the server opens
}

// connectForm is the fix a -k error shows: quoted, so that it can be pasted
// into bash or zsh, which would otherwise expand the braces.
const connectForm = "write -k 'kdsrv:server=@{tcp:server=Host,port=N},trans=@{com:port=COM1,baud=115200}' (in single quotes: unquoted, bash and zsh expand the braces)"

// braceHint is the fix for a -k value whose braces a shell has expanded:
// kdsrv:server=@{tcp:server=h,port=1},trans=@{...} typed without quotes
// reaches the program as several words, "kdsrv:server=@tcp:server=h", ...
const braceHint = "the shell expanded the braces of an unquoted -k value; put the whole value in single quotes: -k 'kdsrv:server=@{tcp:server=Host,port=N},trans=@{com:port=COM1,baud=115200}'"

// ParseConnect parses a smart client's -k value
//
//	kdsrv:server=@{<client transport>},trans=@{<target>}
//
// server= is parsed by ParseClientTransport and trans= by ParseTarget; trans
// fields may be missing (the server fills them from its environment).
// Errors are of type *Error; an error inside a group has Input set to the
// whole value and a message that names the group.
func ParseConnect(s string) (*Connect, error) { return exported(parseConnect(s)) }

func parseConnect(input string) (*Connect, *Error) {
	l, lerr := lex(input)
	if lerr != nil {
		return nil, lerr
	}
	if l.proto != "kdsrv" {
		return nil, newError(input, "", l.proto, "a smart-client connection starts with kdsrv:", connectForm)
	}
	c := &Connect{}
	for _, p := range l.params {
		if p.key != "server" && p.key != "trans" {
			return nil, newError(input, p.key, p.value, "unknown key for kdsrv:; only server= and trans= are allowed", connectForm)
		}
		inner, ok := group(p.value)
		if !p.hasValue || !ok {
			hint := connectForm
			if strings.HasPrefix(p.value, "@") && !strings.Contains(input, "{") {
				hint = braceHint
			}
			return nil, newError(input, p.key, "", p.key+"= must be a group @{...}", hint)
		}
		var err *Error
		if p.key == "server" {
			c.Server, err = parseTransport(inner, clientSide)
		} else {
			c.Trans, err = parseTarget(inner)
		}
		if err != nil {
			err.Input = redact(input)
			err.Msg = "in " + p.key + "=@{...}: " + err.Msg
			return nil, err
		}
	}
	if c.Server == nil {
		return nil, newError(input, "server", "", "missing server=@{...}: how to reach the KD connection server", connectForm)
	}
	if c.Trans == nil {
		return nil, newError(input, "trans", "", "missing trans=@{...}: the kernel debug connection to open", connectForm)
	}
	return c, nil
}

// String returns the canonical form with the password and KDNET key shown as
// "*". It is safe for logs.
func (c *Connect) String() string {
	return "kdsrv:server=@{" + c.Server.String() + "},trans=@{" + c.Trans.String() + "}"
}

// Canonical returns the canonical form with the secrets, for re-parsing.
func (c *Connect) Canonical() string {
	return "kdsrv:server=@{" + c.Server.Canonical() + "},trans=@{" + c.Trans.Canonical() + "}"
}
