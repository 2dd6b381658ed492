# The seed's mailer-base on busybox. Debian's busybox has no groupadd/useradd (nor addgroup/adduser),
# so the RUN writes the same system user and group into /etc/group and /etc/passwd itself.
FROM busybox:latest
LABEL maintainer="dia@allingeek.com"
RUN echo 'example:x:2200:' >> /etc/group && \
    echo 'example:x:2200:2200::/home/example:/bin/false' >> /etc/passwd
ENV APPROOT="/app" \
    APP="mailer.sh" \
    VERSION="0.6"
LABEL base.name="Mailer Archetype" \
      base.version="${VERSION}"
WORKDIR $APPROOT
ADD . $APPROOT
ENTRYPOINT ["/app/mailer.sh"]
EXPOSE 33333
# Do not set the default user in the base otherwise
# implementations will not be able to update the image
# USER example:example
