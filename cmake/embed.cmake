# Turns a file into a C array, so the dashboard's files live inside the replica binary:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P cmake/embed.cmake
# defines `const unsigned char NAME[]` (NUL-terminated) and `const size_t NAME_len`.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "#include <stddef.h>\nextern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {${bytes}0};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
