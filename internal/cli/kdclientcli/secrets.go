package kdclientcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"kdsrv/internal/client"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/secret"
	"kdsrv/internal/spec"
)

// Flag names that messages mention.
const (
	flagPasswordFile   = "password-file"
	flagKDNETKeyFile   = "kdnet-key-file"
	flagInsecureKDNET  = "insecure-send-kdnet-key"
	passwordAlternates = "-password-file FILE (mode 600) or the " + secret.EnvPassword + " environment variable (kdclient asks on the terminal when neither is given)"
	keyAlternates      = "-kdnet-key-file FILE (mode 600) or the " + secret.EnvKDNETKey + " environment variable"
)

// secrets records where the password of -k came from, for messages.
type secrets struct {
	passwordFrom string // "" when there is none yet
}

// resolveSecrets completes -k with the secrets kept off the command line:
// the server password from -password-file or KDSRV_PASSWORD when
// server=@{...} gives none, the KDNET key from -kdnet-key-file or
// KDSRV_KDNET_KEY when trans=@{net:...} gives none. It warns (once each)
// about secrets that are on the command line, and refuses to send a KDNET
// key over a transport that does not encrypt, unless
// -insecure-send-kdnet-key says to.
func resolveSecrets(c *spec.Connect, o cliOptions, getenv func(string) string, stderr io.Writer) (*secrets, error) {
	s := &secrets{}
	from, err := secretSource{
		inline: c.Server.Password != "", inlineFrom: "password= in -k",
		warning:  secret.CommandLineWarning("password in -k", passwordAlternates),
		conflict: fmt.Sprintf("-k gives password= and -%s gives another: keep one (the file)", flagPasswordFile),
		file:     o.passwordFile, fileWhat: "password file", fileFlag: flagPasswordFile,
		env: secret.EnvPassword,
		set: func(pw string) error {
			if err := spec.CheckPassword(pw); err != nil {
				return err
			}
			c.Server.Password = pw
			return nil
		},
	}.resolve(getenv, stderr)
	if err != nil {
		return nil, err
	}
	s.passwordFrom = from

	if c.Trans.Kind == spec.TargetNet {
		_, err := secretSource{
			inline:   c.Trans.Key != "",
			warning:  secret.CommandLineWarning("KDNET key in trans=@{net:...}", keyAlternates),
			conflict: fmt.Sprintf("trans=@{net:...} gives key= and -%s gives another: keep one (the file)", flagKDNETKeyFile),
			file:     o.kdnetKeyFile, fileWhat: "KDNET key file", fileFlag: flagKDNETKeyFile,
			env: secret.EnvKDNETKey,
			set: func(k string) error { return setKey(c.Trans, k) },
		}.resolve(getenv, stderr)
		if err != nil {
			return nil, err
		}
		if c.Trans.Key == "" {
			return nil, fmt.Errorf("trans=@{net:...} needs the target's KDNET key (bcdedit /dbgsettings on the target): give it with %s", keyAlternates)
		}
		if !c.Server.IsTLS() && !o.insecureSendKDNETKey {
			return nil, fmt.Errorf("refusing to send the KDNET key over %s: the transport is not encrypted, so anyone on the path could read the key and then decrypt and drive the target's debug traffic; "+
				"connect to kdsrv over ssl or spipe (server=@{ssl:proto=tls1,...} or server=@{spipe:proto=tls1,...}), or pass -%s to send it anyway", c.Server.Proto, flagInsecureKDNET)
		}
	} else if o.kdnetKeyFile != "" {
		return nil, fmt.Errorf("-%s is for trans=@{net:...} targets; this target is %s", flagKDNETKeyFile, c.Trans)
	}
	return s, nil
}

// secretSource is where one secret may come from, first found first: the
// command line (inline: warned about, and a file given as well is
// refused), a file (-fileFlag), the environment variable env.
type secretSource struct {
	inline     bool
	inlineFrom string // where an inline secret is, for messages
	warning    string // the warning about an inline secret
	conflict   string // the error when a file is given as well
	file       string // the file's path; "" for none
	fileWhat   string // "password file", for messages
	fileFlag   string // the flag that names the file
	env        string
	set        func(string) error // checks and stores a secret read from the file or env
}

// resolve finds the secret and returns where it came from ("" when it was
// not found). Errors never contain the secret.
func (src secretSource) resolve(getenv func(string) string, stderr io.Writer) (string, error) {
	switch {
	case src.inline:
		fmt.Fprintf(stderr, "kdclient: %s\n", src.warning)
		if src.file != "" {
			return "", errors.New(src.conflict)
		}
		return src.inlineFrom, nil
	case src.file != "":
		v, err := secret.ReadFile(src.fileWhat, src.file)
		if err != nil {
			return "", err
		}
		if err := src.set(v); err != nil {
			return "", fmt.Errorf("%s %s: %w", src.fileWhat, src.file, err)
		}
		return "-" + src.fileFlag + " " + src.file, nil
	}
	if v, ok := secret.FromEnv(getenv, src.env); ok {
		if err := src.set(v); err != nil {
			return "", fmt.Errorf("%s: %w", src.env, err)
		}
		return src.env, nil
	}
	return "", nil
}

// setKey checks a KDNET key read from a file or the environment and puts
// it into t. Errors never contain the key.
func setKey(t *spec.Target, k string) error {
	if _, err := kdnet.ParseKey(k); err != nil {
		return err
	}
	t.Key = strings.ToLower(strings.TrimSpace(k))
	return nil
}

// errNoPassword explains how to give the password kdsrv asks for.
func errNoPassword(server *spec.Transport) error {
	return fmt.Errorf("kdsrv at %s requires a password, and none was given: use %s", server, passwordAlternates)
}

// dial connects to kdsrv. When the server wants a password and none was
// given, it asks on the terminal (no echo) and connects again; without a
// terminal it says how to give one. A refused password names where it came
// from.
func dial(ctx context.Context, c *spec.Connect, o cliOptions, copts client.Options, s *secrets, stderr io.Writer, prompt func(context.Context, io.Writer, string) (string, error)) (*client.Conn, error) {
	dialOnce := func() (*client.Conn, error) {
		dctx, cancel := dialContext(ctx, c.Server, o, stderr)
		defer cancel()
		return client.Dial(dctx, c.Server, copts)
	}
	conn, err := dialOnce()
	if err != nil && c.Server.Password == "" && errors.Is(err, client.ErrPasswordRequired) {
		// Asking takes as long as the user needs: only Ctrl-C ends it.
		pw, perr := prompt(ctx, stderr, fmt.Sprintf("Password for kdsrv at %s: ", c.Server))
		switch {
		case errors.Is(perr, secret.ErrNoTerminal):
			return nil, errNoPassword(c.Server)
		case perr != nil:
			return nil, fmt.Errorf("password for kdsrv at %s: %w", c.Server, perr)
		}
		if err := spec.CheckPassword(pw); err != nil {
			return nil, fmt.Errorf("the password entered: %w", err)
		}
		c.Server.Password = pw
		s.passwordFrom = "the terminal"
		conn, err = dialOnce()
	}
	if err != nil && s.passwordFrom != "" && errors.Is(err, client.ErrPasswordRefused) {
		return nil, fmt.Errorf("%w (the password came from %s)", err, s.passwordFrom)
	}
	return conn, err
}
