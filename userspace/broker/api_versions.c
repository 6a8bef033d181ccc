/* ApiVersions: the APIs and version ranges this agent serves. */
#include "broker/broker_internal.h"

static void fill_api_keys(struct request *rq, struct api_versions_response *resp)
{
    resp->api_keys = RQ_ALLOC(rq, struct api_versions_response_api_key, api_handlers_len);
    resp->api_keys_count = api_handlers_len;
    for (int i = 0; i < api_handlers_len; i++) {
        resp->api_keys[i].api_key = api_handlers[i].key;
        resp->api_keys[i].min_version = 0;
        resp->api_keys[i].max_version = api_handlers[i].max_ver;
    }
}

void handle_api_versions(struct broker *b, struct request *rq)
{
    (void)b;
    struct api_versions_response *resp = RQ_ALLOC(rq, struct api_versions_response, 1);
    fill_api_keys(rq, resp);
    resp->finalized_features_epoch = -1;
    request_respond(rq, resp);
}

/* KIP-511: a client asking a newer ApiVersions than served gets UNSUPPORTED_VERSION in a v0 body
 * listing what is served, and retries with a version in range. */
void broker_handle_unsupported_api_versions(struct broker *b, struct request *rq)
{
    (void)b;
    struct api_versions_response *resp = RQ_ALLOC(rq, struct api_versions_response, 1);
    resp->error_code = KERR_UNSUPPORTED_VERSION;
    fill_api_keys(rq, resp);
    rq->hdr.api_version = 0;
    rq->flexible = false;
    request_respond(rq, resp);
}
