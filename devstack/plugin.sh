#!/bin/bash
# devstack plugin for nova-kronos: installs the package into nova's
# environment and configures the weigher, the filter and the rebalancer.

function install_nova_kronos {
    setup_develop $NOVA_KRONOS_DIR
}

function configure_nova_kronos {
    if [[ ! -f $NOVA_KRONOS_POLICIES_FILE ]]; then
        sudo install -D -m 0644 \
            $NOVA_KRONOS_DIR/etc/nova-kronos/policies.yaml.sample \
            $NOVA_KRONOS_POLICIES_FILE
    fi
    local conf
    for conf in $NOVA_CONF $NOVA_CPU_CONF; do
        [[ -f $conf ]] || continue
        iniset $conf kronos policies_file $NOVA_KRONOS_POLICIES_FILE
        iniset $conf kronos_prometheus url $NOVA_KRONOS_PROMETHEUS_URL
        iniset $conf kronos_nova auth_type password
        iniset $conf kronos_nova auth_url $KEYSTONE_SERVICE_URI
        iniset $conf kronos_nova username nova
        iniset $conf kronos_nova password $SERVICE_PASSWORD
        iniset $conf kronos_nova user_domain_name Default
        iniset $conf kronos_nova project_name $SERVICE_PROJECT_NAME
        iniset $conf kronos_nova project_domain_name Default
        iniset $conf kronos_nova region_name $REGION_NAME
    done
    if [[ $NOVA_KRONOS_ENABLE_FILTER == True ]]; then
        local filters
        filters=$(iniget $NOVA_CONF filter_scheduler enabled_filters)
        iniset $NOVA_CONF filter_scheduler enabled_filters "${filters:+$filters,}PrometheusFilter"
        iniadd $NOVA_CONF filter_scheduler available_filters nova.scheduler.filters.all_filters
        iniadd $NOVA_CONF filter_scheduler available_filters nova_kronos.scheduler.filters.PrometheusFilter
    fi
    if [[ $NOVA_KRONOS_ENABLE_WEIGHER == True ]]; then
        iniset $NOVA_CONF filter_scheduler weight_classes \
            nova.scheduler.weights.all_weighers,nova_kronos.scheduler.weights.PrometheusWeigher
    fi
}

if is_service_enabled n-sch; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova-kronos"
        install_nova_kronos
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-kronos"
        configure_nova_kronos
    fi
fi
