package caddymodule

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/operator"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// readPasswordHash reads a new password for user and hashes it with
// bcrypt: from the terminal without echo, asked twice, or from the first
// line of standard input when that is not a terminal.
func (o *options) readPasswordHash(user string, cost int) ([]byte, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("--cost must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	name, err := operator.UserName(user)
	if err != nil {
		return nil, err
	}
	var password []byte
	fd := int(o.in.Fd())
	if term.IsTerminal(fd) {
		password, err = readPasswordFromTerminal(fd, o.errOut, name)
	} else {
		password, err = readLine(o.in)
	}
	if err != nil {
		return nil, err
	}
	if err := gateway.CheckNewPassword(name, string(password)); err != nil {
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	hash, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil, fmt.Errorf("hash the password: %w", err)
	}
	return hash, nil
}

func readPasswordFromTerminal(fd int, prompt io.Writer, user string) ([]byte, error) {
	// Give the terminal its echo back if the user presses Ctrl-C.
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer signal.Stop(interrupt)
	go func() {
		if _, ok := <-interrupt; ok {
			_ = term.Restore(fd, state)
			os.Exit(1)
		}
	}()

	fmt.Fprintf(prompt, "New password for %s: ", user)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(prompt, "Repeat it: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, again) {
		return nil, errors.New("the two passwords differ; nothing was changed")
	}
	return first, nil
}

// readLine reads the first line of r, without its line ending.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the password from standard input: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
