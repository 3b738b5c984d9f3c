/* server_stub.c -- placeholder so the server library has a translation unit
 * until src/server/ lands; removed by the server work. */
typedef int cs_server_placeholder;
