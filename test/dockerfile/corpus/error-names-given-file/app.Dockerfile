FROM scratch
RUN --foo true
