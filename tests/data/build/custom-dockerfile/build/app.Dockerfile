FROM busybox
COPY ctx.txt /
CMD ["cat", "/ctx.txt"]
