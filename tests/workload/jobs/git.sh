# git: clone a local repository, commit, branch, merge, log.
prepare() {
  local fx=$HOME/fixtures/git
  rm -rf "$fx" && mkdir -p "$fx/seed"
  git config --global user.name "Workload Agent"
  git config --global user.email agent@example.invalid
  git config --global init.defaultBranch main
  (cd "$fx/seed" && git init -q && echo one > README && git add README && git commit -qm initial)
  git clone -q --bare "$fx/seed" "$fx/origin.git"
}
run() {
  git clone "$HOME/fixtures/git/origin.git" project
  cd project
  history
}
# Without the clone (which runs git-upload-pack through /bin/sh): for a system whose /bin is not
# /usr/bin, as the VM tier's busybox guests, where coding-agent runs nothing from /bin.
run_without_clone() {
  git init -q project
  cd project
  echo one > README
  git add README
  git commit -qm initial
  history
}
history() {
  git checkout -b feature
  echo two >> README
  git commit -am "second line"
  git checkout main
  git merge --no-edit feature
  git branch -d feature
  git log --oneline
  git status --short
  git gc --quiet
}
