/* arch_id.c - architecture names for every build (a snapshot may come from another). */
#include "arch.h"

const char *arch_id_name(uint32_t id)
{
	switch (id) {
	case ARCH_ID_X86_64:
		return "x86_64";
	case ARCH_ID_ARM64:
		return "arm64";
	}
	return "unknown";
}
