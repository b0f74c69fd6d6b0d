# Go: `go build` and `go test` of a module that depends on a module served by a local file
# proxy (GOPROXY=file://...), so that the module cache (~/go/pkg/mod) and the build cache
# (~/.cache/go-build) are used as on a developer's machine.
prepare() {
  local fx=$HOME/fixtures/go
  rm -rf "$fx" && mkdir -p "$fx/proxy/example.com/greet/@v" "$fx/src"
  local mod=example.com/greet@v1.0.0
  mkdir -p "$fx/src/$mod"
  printf 'module example.com/greet\n\ngo 1.19\n' > "$fx/src/$mod/go.mod"
  printf 'package greet\n\nfunc Hello(n string) string { return "hello " + n }\n' > "$fx/src/$mod/greet.go"
  cp "$fx/src/$mod/go.mod" "$fx/proxy/example.com/greet/@v/v1.0.0.mod"
  echo '{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}' > "$fx/proxy/example.com/greet/@v/v1.0.0.info"
  echo v1.0.0 > "$fx/proxy/example.com/greet/@v/list"
  (cd "$fx/src" && python3 -c 'import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for root, _, files in os.walk(sys.argv[2]):
        for f in files:
            p = os.path.join(root, f); z.write(p, p)' "$fx/proxy/example.com/greet/@v/v1.0.0.zip" "$mod")
}
run() {
  export GOPROXY=file://$HOME/fixtures/go/proxy GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
  go mod init example.com/app
  cat > main.go <<'G'
package main

import (
	"fmt"

	"example.com/greet"
)

func main() { fmt.Println("go job:", greet.Hello("agent")) }
G
  cat > main_test.go <<'G'
package main

import (
	"testing"

	"example.com/greet"
)

func TestHello(t *testing.T) {
	if greet.Hello("x") != "hello x" {
		t.Fatal("wrong")
	}
}
G
  go get example.com/greet@v1.0.0
  go build -o app .
  ./app
  go test ./...
  go vet ./...
}
