#!/bin/sh
printf "Logging Mailer has started.\n"
