/* codec_encode_gen.h — module-local: the writers of the generation fields
 * (codec_encode_gen.c), called by codec_encoder.c after the v1 fields. */
#ifndef KINFER_CODEC_ENCODE_GEN_H
#define KINFER_CODEC_ENCODE_GEN_H

#include "codec_avro.h"
#include "kinfer/kinfer_codec.h"

/* prompt, messages, prompt_token_ids, generation. */
kinfer_err codec_encode_request_gen(codec_buf *b, const kinfer_codec_request *req,
                                    kinfer_error *err);
/* generation, chunk. */
kinfer_err codec_encode_response_gen(codec_buf *b, const kinfer_codec_response *resp,
                                     kinfer_error *err);

#endif
