# Pattern: an "onbuild" base image (the retired language:onbuild tags): triggers that copy the
# downstream project in, build it and label it. The listing is sorted into /tmp first: a redirect
# into the listed directory would race with find (sort creates the file while find reads).
FROM busybox:latest
WORKDIR /usr/src/app
ONBUILD COPY app/ /usr/src/app/
ONBUILD RUN find . -type f | sort > /tmp/MANIFEST && mv /tmp/MANIFEST /usr/src/app/MANIFEST
ONBUILD LABEL built.from=onbuild-base
CMD ["cat", "MANIFEST"]
