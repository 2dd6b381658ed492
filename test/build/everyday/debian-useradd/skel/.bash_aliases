# project bashrc
alias ll="ls -l"
