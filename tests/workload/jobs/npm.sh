# npm: install four packages from local tarballs (no network), then `npm test`.
# prepare runs unguarded as the test user and makes the tarballs; run is the agent's job.
prepare() {
  local fx=$HOME/fixtures/npm
  rm -rf "$fx" && mkdir -p "$fx/src" "$fx/tgz"
  for name in left-pad-lite is-even-lite kebab-lite clamp-lite; do
    mkdir -p "$fx/src/$name"
    cat > "$fx/src/$name/package.json" <<J
{"name": "$name", "version": "1.0.0", "main": "index.js", "license": "MIT"}
J
    echo "module.exports = function $(echo "$name" | tr -d '-')(x) { return x; };" > "$fx/src/$name/index.js"
    (cd "$fx/tgz" && npm pack --silent "$fx/src/$name" >/dev/null)
  done
}
run() {
  export npm_config_offline=true npm_config_audit=false npm_config_fund=false \
         npm_config_update_notifier=false
  echo "node: $(command -v node), npm: $(command -v npm)"
  cat > package.json <<J
{"name": "agent-project", "version": "0.1.0", "private": true,
 "scripts": {"test": "node test.js"}}
J
  cat > test.js <<'J'
const assert = require('assert');
for (const m of ['left-pad-lite', 'is-even-lite', 'kebab-lite', 'clamp-lite'])
  assert.strictEqual(require(m)(7), 7);
console.log('npm job: 4 packages work');
J
  npm install --no-progress "$HOME"/fixtures/npm/tgz/*.tgz
  npm test
  npm ls --depth=0
}
