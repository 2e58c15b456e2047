# Sourced by the shell tests. Needs $fashion (the Fashion-MNIST folder).
#
# fashion_subset N IMAGES LABELS: IDX files of the first N Fashion-MNIST test images and their
# labels, with headers that say N.
be32() {  # a big-endian 32-bit number as printf escapes
  printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
    $(($1 >> 8 & 255)) $(($1 & 255))
}
fashion_subset() {
  local n="$1" images="$2" labels="$3"
  { printf '\x00\x00\x08\x03'; printf "$(be32 "$n")"; printf '\x00\x00\x00\x1c\x00\x00\x00\x1c'
    gzip -dc "$fashion/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)); } >"$images"
  { printf '\x00\x00\x08\x01'; printf "$(be32 "$n")"
    gzip -dc "$fashion/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$n"; } >"$labels"
}
