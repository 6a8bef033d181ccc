/* Names of the BPF programs' decision counters (counter_names.h). */
#include "steer/counter_names.h"

const char *const steer_counter_names[STEER_COUNTER_MAX] = {
    [STEER_SLOT_HIT] = "slot_hit",
    [STEER_BOOTSTRAP_PICK] = "bootstrap_pick",
    [STEER_NO_OWNER] = "no_owner",
    [STEER_ASSIGN_ERROR] = "assign_error",
    [STEER_NO_LIVE_WORKER] = "no_live_worker",
    [STEER_SLOT_FALLBACK] = "slot_fallback",
    [STEER_OTHER_ADDRESS] = "other_address",
};

const char *const fwd_counter_names[FWD_COUNTER_MAX] = {
    [FWD_FORWARDED] = "forwarded",
    [FWD_SECOND_CHANCE] = "second_chance",
    [FWD_PASSED_OWNER] = "passed_owner",
    [FWD_PASSED_FLOW] = "passed_flow",
    [FWD_NO_OWNER] = "no_owner",
    [FWD_LOOP_STOP] = "loop_stop",
    [FWD_NO_ROUTE] = "no_route",
    [FWD_TOO_BIG] = "too_big",
    [FWD_ENCAPSULATED] = "encapsulated",
    [FWD_DECAPSULATED] = "decapsulated",
};
