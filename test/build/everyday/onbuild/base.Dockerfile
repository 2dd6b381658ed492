# Pattern: an "onbuild" base image (the retired language:onbuild tags): triggers that copy the
# downstream project in, build it and label it.
FROM busybox:latest
WORKDIR /usr/src/app
ONBUILD COPY app/ /usr/src/app/
ONBUILD RUN find . -type f | sort > /usr/src/app/MANIFEST
ONBUILD LABEL built.from=onbuild-base
CMD ["cat", "MANIFEST"]
